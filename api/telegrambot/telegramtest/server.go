// Package telegramtest is a local stand-in for the Telegram Bot API, for
// tests (Telegram cannot be reached from them). It speaks the real
// protocol: POST /bot<token>/<method> with JSON, answered by the envelope
// {"ok":true,"result":...} or {"ok":false,"error_code":N,"description":...,
// "parameters":{"retry_after":S}}. It serves getUpdates (long polling with
// offset and timeout; a second concurrent poller terminates the first with
// 409, as Telegram does; 409 while a webhook is set), sendMessage,
// setWebhook (then it delivers new updates to the webhook with the
// X-Telegram-Bot-Api-Secret-Token header) and deleteWebhook, refuses a
// wrong token with 401, and can be told to fail the next calls of a method
// with any answer (429 with retry_after, 5xx, ...). It records what it
// received with the time on its own clock.
package telegramtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Request is one call the server received.
type Request struct {
	At        time.Time
	Method    string
	UserAgent string
	// Status is the HTTP status it was answered with.
	Status int
	// ChatID and Text are sendMessage's parameters.
	ChatID int64
	Text   string
}

// Answer is a canned answer: HTTP status and body.
type Answer struct {
	Status int
	Body   string
}

// RetryAfter is Telegram's 429 answer asking to wait s seconds.
func RetryAfter(s int) Answer {
	return Answer{429, fmt.Sprintf(`{"ok":false,"error_code":429,"description":"Too Many Requests: retry after %d","parameters":{"retry_after":%d}}`, s, s)}
}

// ServerError is a 5xx answer in the Bot API's shape.
func ServerError(code int) Answer {
	return Answer{code, fmt.Sprintf(`{"ok":false,"error_code":%d,"description":"%s"}`, code, http.StatusText(code))}
}

// Server is the fake Bot API.
type Server struct {
	*httptest.Server
	// Token is the only token accepted.
	Token string

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced when updates arrive
	updates  []json.RawMessage
	ids      []int64
	nextID   int64
	reqs     []Request
	fail     map[string][]Answer
	polling  chan struct{} // closed to terminate the poll in flight
	pollUA   string
	webhook  string
	secret   string
	hookResp []int
	hookTo   string // DeliverTo's override of the webhook URL
	client   *http.Client
}

// DeliverTo makes webhook deliveries go to url instead of the registered
// webhook URL (which Telegram requires to be public HTTPS), still with the
// registered secret token: a test's node serves plain HTTP on loopback.
func (s *Server) DeliverTo(url string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hookTo = url
}

// New starts a server accepting token; it is closed when t ends.
func New(t testing.TB, token string) *Server {
	s := &Server{Token: token, changed: make(chan struct{}), nextID: 100, fail: map[string][]Answer{}, client: &http.Client{Timeout: 30 * time.Second}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

// Fail makes the next len(answers) calls of method get these answers.
func (s *Server) Fail(method string, answers ...Answer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail[method] = append(s.fail[method], answers...)
}

// AddMessage queues a text message from user in chat and returns its
// update id. With a webhook set it is posted there.
func (s *Server) AddMessage(chat, user int64, text string) int64 {
	s.mu.Lock()
	s.nextID++
	id := s.nextID
	u, _ := json.Marshal(map[string]any{"update_id": id, "message": map[string]any{
		"message_id": id, "date": time.Now().Unix(), "text": text,
		"chat": map[string]any{"id": chat, "type": "group"}, "from": map[string]any{"id": user, "is_bot": false, "first_name": "op"},
	}})
	hook, secret := s.webhook, s.secret
	if hook != "" && s.hookTo != "" {
		hook = s.hookTo
	}
	if hook == "" {
		s.updates, s.ids = append(s.updates, u), append(s.ids, id)
		close(s.changed)
		s.changed = make(chan struct{})
	}
	s.mu.Unlock()
	if hook != "" {
		go s.deliver(hook, secret, u)
	}
	return id
}

func (s *Server) deliver(url, secret string, u []byte) {
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(u))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Telegram-Bot-Api-Secret-Token", secret)
	status := 0
	if resp, err := s.client.Do(req); err == nil {
		status = resp.StatusCode
		resp.Body.Close()
	}
	s.mu.Lock()
	s.hookResp = append(s.hookResp, status)
	s.mu.Unlock()
}

// Requests returns what the server received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.reqs...)
}

// Sent returns the sendMessage calls answered ok.
func (s *Server) Sent() []Request {
	var out []Request
	for _, r := range s.Requests() {
		if r.Method == "sendMessage" && r.Status == http.StatusOK {
			out = append(out, r)
		}
	}
	return out
}

// Calls returns the calls of method (whatever their answer).
func (s *Server) Calls(method string) []Request {
	var out []Request
	for _, r := range s.Requests() {
		if r.Method == method {
			out = append(out, r)
		}
	}
	return out
}

// Webhook returns the registered webhook URL and secret.
func (s *Server) Webhook() (url, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.webhook, s.secret
}

// WebhookStatuses returns the statuses the webhook answered deliveries with.
func (s *Server) WebhookStatuses() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.hookResp...)
}

// Pending returns the ids of updates not yet confirmed by an offset.
func (s *Server) Pending() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int64(nil), s.ids...)
}

func (s *Server) record(r Request) {
	s.mu.Lock()
	s.reqs = append(s.reqs, r)
	s.mu.Unlock()
}

func write(w http.ResponseWriter, a Answer) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.Status)
	io.WriteString(w, a.Body)
}

func errAnswer(code int, desc string) Answer {
	b, _ := json.Marshal(map[string]any{"ok": false, "error_code": code, "description": desc})
	return Answer{code, string(b)}
}

func okAnswer(result any) Answer {
	b, _ := json.Marshal(map[string]any{"ok": true, "result": result})
	return Answer{http.StatusOK, string(b)}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	req := Request{At: time.Now(), UserAgent: r.Header.Get("User-Agent")}
	answer := func(a Answer) {
		req.Status = a.Status
		s.record(req)
		write(w, a)
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/bot")
	tok, method, ok2 := strings.Cut(rest, "/")
	req.Method = method
	if !ok || !ok2 || r.Method != http.MethodPost {
		answer(errAnswer(404, "Not Found"))
		return
	}
	if tok != s.Token {
		answer(errAnswer(401, "Unauthorized"))
		return
	}
	var p struct {
		ChatID         json.Number `json:"chat_id"`
		Text           string      `json:"text"`
		Offset         int64       `json:"offset"`
		Timeout        int         `json:"timeout"`
		URL            string      `json:"url"`
		SecretToken    string      `json:"secret_token"`
		AllowedUpdates []string    `json:"allowed_updates"`
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err := json.Unmarshal(body, &p); err != nil {
		answer(errAnswer(400, "Bad Request: "+err.Error()))
		return
	}
	req.Text = p.Text
	req.ChatID, _ = p.ChatID.Int64()
	s.mu.Lock()
	if f := s.fail[method]; len(f) > 0 {
		s.fail[method] = f[1:]
		s.mu.Unlock()
		answer(f[0])
		return
	}
	s.mu.Unlock()
	switch method {
	case "sendMessage":
		if req.ChatID == 0 || p.Text == "" {
			answer(errAnswer(400, "Bad Request: chat_id and text are required"))
			return
		}
		answer(okAnswer(map[string]any{"message_id": time.Now().UnixNano(), "chat": map[string]any{"id": req.ChatID}, "text": p.Text}))
	case "setWebhook":
		s.mu.Lock()
		s.webhook, s.secret = p.URL, p.SecretToken
		s.mu.Unlock()
		answer(okAnswer(true))
	case "deleteWebhook":
		s.mu.Lock()
		s.webhook, s.secret = "", ""
		s.mu.Unlock()
		answer(okAnswer(true))
	case "getUpdates":
		s.getUpdates(r, p.Offset, p.Timeout, &req, answer)
	default:
		answer(errAnswer(404, "Not Found: method not found"))
	}
}

func (s *Server) getUpdates(r *http.Request, offset int64, timeout int, req *Request, answer func(Answer)) {
	s.mu.Lock()
	if s.webhook != "" {
		s.mu.Unlock()
		answer(errAnswer(409, "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"))
		return
	}
	if s.polling != nil {
		close(s.polling) // the poll in flight ends with 409
	}
	mine := make(chan struct{})
	s.polling, s.pollUA = mine, req.UserAgent
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.polling == mine {
			s.polling = nil
		}
		s.mu.Unlock()
	}()
	deadline := time.NewTimer(time.Duration(timeout) * time.Second)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		// An offset confirms every update before it.
		for len(s.ids) > 0 && s.ids[0] < offset {
			s.ids, s.updates = s.ids[1:], s.updates[1:]
		}
		var out []json.RawMessage
		for i, id := range s.ids {
			if id >= offset {
				out = append(out, s.updates[i])
			}
		}
		changed := s.changed
		s.mu.Unlock()
		if len(out) > 0 || timeout <= 0 {
			if out == nil {
				out = []json.RawMessage{}
			}
			answer(okAnswer(out))
			return
		}
		select {
		case <-changed:
		case <-mine:
			answer(errAnswer(409, "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"))
			return
		case <-deadline.C:
			answer(okAnswer([]json.RawMessage{}))
			return
		case <-r.Context().Done():
			req.Status = 499 // client closed the request
			s.record(*req)
			return
		}
	}
}
