package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sessiond/sessiond/authsvc/notify"
	"github.com/sessiond/sessiond/cluster"
	"github.com/sessiond/sessiond/cluster/pki"
)

// nodeTLS is a node's TLS material: the peer store (node certificate and
// cluster CA) and, for the client API, an optional certificate of its own
// and the CA that verifies client certificates.
type nodeTLS struct {
	peer     *pki.Store // nil in insecure-plaintext mode
	apiCert  *pki.Store // nil: the node's certificate
	clientCA *pki.Store // nil: the cluster CA
	domain   string
	minAPI   uint16
}

// loadTLS opens the stores the configuration names.
func (c *Config) loadTLS() (*nodeTLS, error) {
	if c.InsecurePlaintext {
		return &nodeTLS{}, nil
	}
	t := &nodeTLS{domain: c.TLS.TrustDomain, minAPI: tls.VersionTLS13}
	if c.APITLS.MinVersion == "1.2" {
		t.minAPI = tls.VersionTLS12
	}
	var err error
	if t.peer, err = pki.NewStore(pki.Files{CAFile: c.TLS.CAFile, CertFile: c.TLS.CertFile, KeyFile: c.TLS.KeyFile},
		pki.StoreOptions{Check: cluster.NodeCertCheck(c.TLS.TrustDomain, c.NodeID)}); err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	if c.APITLS.CertFile != "" {
		if t.apiCert, err = pki.NewStore(pki.Files{CertFile: c.APITLS.CertFile, KeyFile: c.APITLS.KeyFile}, pki.StoreOptions{}); err != nil {
			return nil, fmt.Errorf("api_tls: %w", err)
		}
	}
	if c.APITLS.ClientCAFile != "" {
		if t.clientCA, err = pki.NewStore(pki.Files{CAFile: c.APITLS.ClientCAFile}, pki.StoreOptions{}); err != nil {
			return nil, fmt.Errorf("api_tls.client_ca_file: %w", err)
		}
	}
	return t, nil
}

// stores returns the stores in use by name (peer, api, client-ca).
func (t *nodeTLS) stores() map[string]*pki.Store {
	out := map[string]*pki.Store{}
	for name, s := range map[string]*pki.Store{"peer": t.peer, "api": t.apiCert, "client-ca": t.clientCA} {
		if s != nil {
			out[name] = s
		}
	}
	return out
}

// peerTLS is the cluster's peer setting (nil in plaintext mode).
func (t *nodeTLS) peerTLS() *cluster.PeerTLS {
	if t.peer == nil {
		return nil
	}
	return &cluster.PeerTLS{Store: t.peer, TrustDomain: t.domain}
}

// apiConfig is the client API's TLS configuration: TLS 1.3 by default,
// HTTP/2 and HTTP/1.1 (gRPC, Connect and gRPC-Web), the current
// certificate at each handshake, and client certificates verified against
// the client CA when a client offers one (handlers find the verified chain
// in r.TLS.VerifiedChains). nil when the API is plaintext.
func (t *nodeTLS) apiConfig() *tls.Config {
	if t.peer == nil {
		return nil
	}
	cert := func() *tls.Certificate {
		if t.apiCert != nil {
			return t.apiCert.Current().Cert
		}
		return t.peer.Current().Cert
	}
	clientCA := t.peer
	if t.clientCA != nil {
		clientCA = t.clientCA
	}
	protos := []string{"h2", "http/1.1"}
	return &tls.Config{
		MinVersion: t.minAPI,
		NextProtos: protos,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return &tls.Config{
				MinVersion:   t.minAPI,
				NextProtos:   protos,
				Certificates: []tls.Certificate{*cert()},
				ClientAuth:   tls.VerifyClientCertIfGiven,
				ClientCAs:    clientCA.Current().Pool,
			}, nil
		},
	}
}

// reload reads every TLS file again (SIGHUP); a store whose files do not
// load or pass its check keeps what it had. It logs each outcome.
func (t *nodeTLS) reload(log *slog.Logger) {
	for name, s := range t.stores() {
		if err := s.Reload(); err != nil {
			log.Error("TLS reload failed; keeping the previous certificates", "use", name, "err", err)
		} else {
			log.Info("TLS files reloaded", "use", name, "not_after", s.Current().NotAfter())
		}
	}
}

// watch reloads a store when its files change, until ctx ends.
func (t *nodeTLS) watch(ctx context.Context, every time.Duration, log *slog.Logger, run func(func(context.Context))) {
	for name, s := range t.stores() {
		run(func(context.Context) {
			s.Watch(ctx, every, func(err error) {
				if err != nil {
					log.Error("TLS files changed but do not load; keeping the previous certificates", "use", name, "err", err)
				} else {
					log.Info("TLS files changed: reloaded", "use", name, "not_after", s.Current().NotAfter())
				}
			})
		})
	}
}

// expiries returns the expiry of each certificate in use, by use: "peer"
// (the node's), "api" (the API's own, if any) and "ca" (the earliest of
// the CA bundle and the client CA).
func (t *nodeTLS) expiries() map[string]time.Time {
	out := map[string]time.Time{}
	if t.peer == nil {
		return out
	}
	m := t.peer.Current()
	out["peer"], out["ca"] = m.NotAfter(), m.CANotAfter()
	if t.apiCert != nil {
		out["api"] = t.apiCert.Current().NotAfter()
	}
	if t.clientCA != nil {
		if ca := t.clientCA.Current().CANotAfter(); ca.Before(out["ca"]) {
			out["ca"] = ca
		}
	}
	return out
}

// expiryWarning is how long before a certificate expires the node starts
// warning about it.
const expiryWarning = 30 * 24 * time.Hour

// warnExpiry logs at WARN, and alerts the notifiers, when a certificate
// in use expires within expiryWarning: at start, then once a day per
// certificate (and at once for a new certificate after a reload), until
// ctx ends. It looks every minute.
func (t *nodeTLS) warnExpiry(ctx context.Context, log *slog.Logger, raise func(key string, ev notify.Event), node, region string) {
	type warned struct{ notAfter, at time.Time }
	last := map[string]warned{}
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		now := time.Now()
		for use, at := range t.expiries() {
			left := at.Sub(now)
			if at.IsZero() || left > expiryWarning {
				continue
			}
			if w, ok := last[use]; ok && w.notAfter.Equal(at) && now.Sub(w.at) < 24*time.Hour {
				continue
			}
			last[use] = warned{at, now}
			msg := fmt.Sprintf("the %s certificate expires at %s (in %s): issue a new one (sessiond tls cert create) and replace the files; they are reloaded without a restart",
				use, at.UTC().Format(time.RFC3339), left.Round(time.Hour))
			if left <= 0 {
				msg = fmt.Sprintf("the %s certificate expired at %s", use, at.UTC().Format(time.RFC3339))
			}
			log.Warn("TLS certificate expiring", "use", use, "not_after", at, "detail", msg)
			if raise != nil {
				// The CA is the cluster's: one alert for all nodes; the
				// node's own certificates are its own.
				key := fmt.Sprintf("cert_expiring:%s:%d", use, at.Unix())
				if use != "ca" {
					key = fmt.Sprintf("cert_expiring:%s:%s:%d", use, node, at.Unix())
				}
				raise(key, notify.Event{Kind: notify.KindCertExpiring, Node: node, Region: region, At: now, Detail: msg})
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// expiryCollector exports sessiond_tls_cert_expiry_timestamp_seconds{use}.
type expiryCollector struct {
	t    *nodeTLS
	desc *prometheus.Desc
}

func newExpiryCollector(t *nodeTLS) *expiryCollector {
	return &expiryCollector{t: t, desc: prometheus.NewDesc("sessiond_tls_cert_expiry_timestamp_seconds",
		"When the certificate in use expires (Unix seconds), by use: peer (the node's), api (the API's own), ca (the earliest CA).", []string{"use"}, nil)}
}

func (c *expiryCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *expiryCollector) Collect(ch chan<- prometheus.Metric) {
	for use, at := range c.t.expiries() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(at.Unix()), use)
	}
}
