package telegrambot

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/sessiond/sessiond/authsvc/notify"
)

// leaderCheck is how often the loops look whether this node leads.
const leaderCheck = 200 * time.Millisecond

// Run keeps the bot receiving updates until ctx ends: in polling mode this
// node long-polls getUpdates while it is the Raft leader and stops (its
// request cancelled) as soon as it is not, so one node of the cluster polls
// at a time; in webhook mode the leader registers the webhook (setWebhook
// with the secret token) each time it becomes leader, and Handler serves
// the updates on every node.
func (b *Bot) Run(ctx context.Context) {
	for ctx.Err() == nil {
		if !b.cluster.IsLeader() {
			if b.sleep(ctx, leaderCheck) != nil {
				return
			}
			continue
		}
		lctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			if b.cfg.WebhookURL != "" {
				b.registerWebhook(lctx)
				<-lctx.Done()
			} else {
				b.poll(lctx)
			}
		}()
		for b.cluster.IsLeader() && b.sleep(ctx, leaderCheck) == nil {
		}
		cancel()
		<-done
	}
}

// retry waits before the next Bot API call after err: Telegram's
// retry_after when it names one, else backoff (doubled here, up to 30s; a
// 401 or 404 — a revoked token — waits a minute). It returns false when ctx
// ended.
func (b *Bot) retry(ctx context.Context, what string, err error, backoff *time.Duration) bool {
	var de *notify.DeliveryError
	d := *backoff
	*backoff = min(*backoff*2, 30*time.Second)
	level := slog.LevelWarn
	if errors.As(err, &de) {
		switch {
		case de.RetryAfter > 0:
			d = de.RetryAfter
		case de.StatusCode == 409:
			// Another poller (a deposed leader's request still open) or a
			// webhook is set: wait, the old request ends within PollTimeout.
			level = slog.LevelInfo
		case de.StatusCode == 401 || de.StatusCode == 404:
			d = time.Minute
			level = slog.LevelError
		}
	}
	b.cfg.Logger.Log(ctx, level, "telegram "+what+" failed; retrying", "wait", d, "err", err)
	return b.sleep(ctx, d) == nil
}

// poll long-polls getUpdates and handles each update in order until ctx
// ends. It first removes any webhook (getUpdates is refused while one is
// set). The offset confirms what was handled; a new leader starts from
// what Telegram still holds, and the update claims skip what its
// predecessor answered.
func (b *Bot) poll(ctx context.Context) {
	backoff := 500 * time.Millisecond
	for {
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err := b.cfg.API.Call(cctx, "deleteWebhook", map[string]any{"drop_pending_updates": false}, nil)
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil || !b.retry(ctx, "deleteWebhook", err, &backoff) {
			return
		}
	}
	backoff = 500 * time.Millisecond
	var offset int64
	for ctx.Err() == nil {
		var updates []Update
		cctx, cancel := context.WithTimeout(ctx, b.cfg.PollTimeout+15*time.Second)
		err := b.cfg.API.Call(cctx, "getUpdates", map[string]any{
			"offset": offset, "timeout": int(b.cfg.PollTimeout / time.Second), "allowed_updates": []string{"message"},
		}, &updates)
		cancel()
		if err != nil {
			if ctx.Err() != nil || !b.retry(ctx, "getUpdates", err, &backoff) {
				return
			}
			continue
		}
		backoff = 500 * time.Millisecond
		for _, u := range updates {
			// An update begun is finished even if leadership moves on:
			// it is claimed, so the next leader will not answer it.
			hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			b.HandleUpdate(hctx, u)
			cancel()
			offset = max(offset, u.UpdateID+1)
		}
	}
}

// registerWebhook calls setWebhook until it succeeds or ctx ends.
func (b *Bot) registerWebhook(ctx context.Context) {
	backoff := 500 * time.Millisecond
	for ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err := b.cfg.API.Call(cctx, "setWebhook", map[string]any{
			"url": b.cfg.WebhookURL, "secret_token": b.cfg.WebhookSecret, "allowed_updates": []string{"message"},
		}, nil)
		cancel()
		if err == nil {
			b.cfg.Logger.Info("telegram webhook registered", "node", b.cfg.Node)
			return
		}
		if !b.retry(ctx, "setWebhook", err, &backoff) {
			return
		}
	}
}
