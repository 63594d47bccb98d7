package idp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// WeChat's public endpoints.
const (
	WeChatAuthURL = "https://open.weixin.qq.com/connect/qrconnect"
	WeChatAPIURL  = "https://api.weixin.qq.com"
)

// WeChatConfig configures WeChat's OAuth2 web login (网站应用微信登录),
// which is OAuth2 with WeChat's own parameter names and JSON errors
// ({"errcode":40029,"errmsg":"invalid code"}), not OpenID Connect: no ID
// token, no discovery, no PKCE. The identity comes from
// /sns/oauth2/access_token (openid, unionid) and /sns/userinfo.
type WeChatConfig struct {
	Name   string
	AppID  string
	Secret string
	// Scope defaults to snsapi_login.
	Scope string
	// AuthURL and APIURL default to WeChat's (WeChatAuthURL, WeChatAPIURL).
	AuthURL string
	APIURL  string
	// HTTPClient is used for every call; nil means HTTPClient(10s, nil).
	HTTPClient *http.Client
}

// WeChat is the WeChat provider. Its Subject is the unionid when the app
// is bound to a WeChat Open Platform account (the same person across the
// company's apps), else the openid (per app).
type WeChat struct{ cfg WeChatConfig }

var _ Provider = (*WeChat)(nil)

// NewWeChat returns the provider.
func NewWeChat(cfg WeChatConfig) (*WeChat, error) {
	if cfg.Name == "" || cfg.AppID == "" || cfg.Secret == "" {
		return nil, errors.New("idp: a WeChat provider needs a name, an appid and a secret")
	}
	if cfg.Scope == "" {
		cfg.Scope = "snsapi_login"
	}
	if cfg.AuthURL == "" {
		cfg.AuthURL = WeChatAuthURL
	}
	if cfg.APIURL == "" {
		cfg.APIURL = WeChatAPIURL
	}
	cfg.APIURL = strings.TrimSuffix(cfg.APIURL, "/")
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = HTTPClient(10*time.Second, nil)
	}
	return &WeChat{cfg: cfg}, nil
}

// Name implements Provider.
func (w *WeChat) Name() string { return w.cfg.Name }

// AuthURL implements Provider (WeChat takes state, not nonce or PKCE).
func (w *WeChat) AuthURL(_ context.Context, req AuthRequest) (string, error) {
	q := url.Values{"appid": {w.cfg.AppID}, "redirect_uri": {req.RedirectURL}, "response_type": {"code"},
		"scope": {w.cfg.Scope}, "state": {req.State}}
	return w.cfg.AuthURL + "?" + q.Encode() + "#wechat_redirect", nil
}

// wechatToken is the answer of /sns/oauth2/access_token and
// /sns/oauth2/refresh_token.
type wechatToken struct {
	AccessToken  string `json:"access_token"`
	ExpiresIn    int    `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	OpenID       string `json:"openid"`
	Scope        string `json:"scope"`
	UnionID      string `json:"unionid"`
	wechatStatus
}

type wechatStatus struct {
	ErrCode int    `json:"errcode"`
	ErrMsg  string `json:"errmsg"`
}

type wechatUser struct {
	OpenID     string `json:"openid"`
	UnionID    string `json:"unionid"`
	Nickname   string `json:"nickname"`
	Country    string `json:"country"`
	Province   string `json:"province"`
	City       string `json:"city"`
	HeadImgURL string `json:"headimgurl"`
	wechatStatus
}

// WeChat error codes that mean the grant is gone.
const (
	wechatInvalidRefresh = 40030 // invalid refresh_token
	wechatRefreshExpired = 42002 // refresh_token expired
	wechatInvalidCode    = 40029 // invalid code
	wechatCodeUsed       = 40163 // code been used
)

// get calls one WeChat API path and decodes its JSON answer. The URL holds
// the app secret or an access token, so no error here carries it.
func (w *WeChat) get(ctx context.Context, path string, q url.Values, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.cfg.APIURL+path+"?"+q.Encode(), nil)
	if err != nil {
		return errorf(CodeUnavailable, nil, "WeChat request could not be made")
	}
	resp, err := w.cfg.HTTPClient.Do(req)
	if err != nil {
		// url.Error would print the URL, and with it the secret.
		return errorf(CodeUnavailable, nil, "WeChat's %s could not be reached", path)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errorf(CodeUnavailable, nil, "WeChat's %s answered HTTP %d", path, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return errorf(CodeUnavailable, nil, "WeChat's %s answered something that is not its JSON", path)
	}
	return nil
}

// Exchange implements Provider.
func (w *WeChat) Exchange(ctx context.Context, _ AuthRequest, code string) (*Grant, error) {
	var tok wechatToken
	if err := w.get(ctx, "/sns/oauth2/access_token", url.Values{"appid": {w.cfg.AppID}, "secret": {w.cfg.Secret},
		"code": {code}, "grant_type": {"authorization_code"}}, &tok); err != nil {
		return nil, err
	}
	switch {
	case tok.ErrCode == wechatInvalidCode || tok.ErrCode == wechatCodeUsed:
		return nil, errorf(CodeExchange, nil, "WeChat refused the authorization code (errcode %d): it was used already, expired, or was not issued to this app", tok.ErrCode)
	case tok.ErrCode != 0:
		return nil, errorf(CodeExchange, nil, "WeChat refused the code exchange (errcode %d: %s)", tok.ErrCode, clip(tok.ErrMsg))
	case tok.OpenID == "" || tok.AccessToken == "":
		return nil, errorf(CodeInvalidToken, nil, "WeChat answered the code exchange without an openid or access token")
	}
	var u wechatUser
	if err := w.get(ctx, "/sns/userinfo", url.Values{"access_token": {tok.AccessToken}, "openid": {tok.OpenID}}, &u); err != nil {
		return nil, err
	}
	if u.ErrCode != 0 {
		return nil, errorf(CodeUnavailable, nil, "WeChat's userinfo failed (errcode %d: %s)", u.ErrCode, clip(u.ErrMsg))
	}
	if u.OpenID != tok.OpenID || (tok.UnionID != "" && u.UnionID != "" && u.UnionID != tok.UnionID) {
		return nil, errorf(CodeInvalidToken, nil, "WeChat's userinfo names another user than its token answer")
	}
	union := tok.UnionID
	if union == "" {
		union = u.UnionID
	}
	sub := tok.OpenID
	if union != "" {
		sub = union
	}
	claims := map[string]any{"openid": tok.OpenID, "unionid": union, "nickname": u.Nickname,
		"country": u.Country, "province": u.Province, "city": u.City}
	return &Grant{Identity: Identity{Provider: w.cfg.Name, Subject: sub, Name: u.Nickname, Claims: claims},
		RefreshToken: tok.RefreshToken}, nil
}

// Refresh implements Provider: /sns/oauth2/refresh_token; errcode 40030
// (invalid) or 42002 (expired) is ErrRevoked.
func (w *WeChat) Refresh(ctx context.Context, refreshToken string) (*Grant, error) {
	var tok wechatToken
	if err := w.get(ctx, "/sns/oauth2/refresh_token", url.Values{"appid": {w.cfg.AppID}, "grant_type": {"refresh_token"},
		"refresh_token": {refreshToken}}, &tok); err != nil {
		return nil, err
	}
	switch tok.ErrCode {
	case 0:
	case wechatInvalidRefresh, wechatRefreshExpired:
		return nil, fmt.Errorf("%w (WeChat errcode %d)", ErrRevoked, tok.ErrCode)
	default:
		return nil, errorf(CodeUnavailable, nil, "WeChat refused the refresh (errcode %d: %s)", tok.ErrCode, clip(tok.ErrMsg))
	}
	g := &Grant{Identity: Identity{Provider: w.cfg.Name, Subject: tok.OpenID}}
	if tok.UnionID != "" {
		g.Identity.Subject = tok.UnionID
	}
	if tok.RefreshToken != refreshToken {
		g.RefreshToken = tok.RefreshToken
	}
	return g, nil
}
