package handlers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/tasker/tasker/gen/db"
	"github.com/tasker/tasker/internal/auth"
	"github.com/tasker/tasker/internal/contract"
	"github.com/tasker/tasker/internal/problem"
	"github.com/tasker/tasker/internal/reqinfo"
	"github.com/tasker/tasker/internal/tenancy"
)

// idempotency makes authenticated POST creates with an Idempotency-Key safe to retry: the first
// successful response is stored for 24 hours and replayed to the same user sending the same
// key to the same URL with the same body; another body is 422, and a key whose first request is
// still running is 409. Failed requests release the key, so a corrected retry can use it.
//
// Secrets are never stored: a created API key or webhook endpoint, and a rotated webhook
// secret, are shown once and so cannot be replayed (the header is ignored there, see
// shownOnce); a replayed user creation comes without its invite token; and the request
// fingerprint leaves passwords out, so the table offers no fast hash of one.
func (s *Server) idempotency(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Idempotency-Key")
		p, authed := auth.FromContext(r.Context())
		// Uploads stream their body, so there is nothing to fingerprint: the key is ignored there.
		if r.Method != http.MethodPost || key == "" || !authed || shownOnce[reqinfo.From(r.Context()).Route()] ||
			contract.BodyStreamed(r.Context()) {
			next.ServeHTTP(w, r)
			return
		}
		ctx := r.Context()
		// The validator has read the body, within the operation's limit; it is not read again.
		body, ok := contract.Body(ctx)
		if !ok {
			s.writeError(w, r, errors.New("idempotency: the request did not pass the validator"))
			return
		}
		// The operation is the path: the same key on another project is another request. The
		// query string is left out, since no create takes one.
		op := r.Method + " " + r.URL.Path
		claim := newID()
		who := db.ReserveIdempotencyKeyParams{
			TenantID: p.Tenant, UserID: p.User, Key: key, Operation: op, RequestHash: fingerprint(op, body), Claim: &claim,
		}

		var reserved bool
		// The caller's standing is checked before anything is reserved or replayed: a caller
		// who has lost the right to the operation gets 403, never a stored response.
		err := s.write(ctx, p, func(tx *tenancy.Tx, _ auth.Principal) error {
			if err := tx.Q.PurgeExpiredIdempotencyKeys(ctx); err != nil {
				return err
			}
			n, err := tx.Q.ReserveIdempotencyKey(ctx, who)
			reserved = n == 1
			return err
		})
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if !reserved {
			s.replay(w, r, p, who)
			return
		}

		rec := &bufferedResponse{header: http.Header{}}
		next.ServeHTTP(rec, r)
		// The create has committed or failed; record that even if the client has gone, but not
		// for longer than a request may reasonably wait.
		done, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		var stored int64
		err = s.db.Write(done, scope(p), func(tx *tenancy.Tx) error {
			q := tx.Q
			var err error
			if rec.status >= 200 && rec.status < 300 {
				stored, err = q.CompleteIdempotencyKey(done, db.CompleteIdempotencyKeyParams{
					UserID: p.User, Key: key, Claim: &claim, Status: ptr(int32(rec.status)),
					Response: withoutSecrets(rec.body.Bytes()), Headers: replayHeaders(rec.header),
				})
				return err
			}
			_, err = q.ReleaseIdempotencyKey(done, db.ReleaseIdempotencyKeyParams{UserID: p.User, Key: key, Claim: &claim})
			return err
		})
		switch {
		case err != nil:
			s.logger.ErrorContext(ctx, "store idempotent response", "request_id", reqinfo.RequestID(ctx), "error", err.Error())
		case rec.status >= 200 && rec.status < 300 && stored == 0:
			// Another request took the key over while this one ran (past the takeover window):
			// a retry may have created the resource a second time.
			s.logger.WarnContext(ctx, "idempotency key taken over before completion", "request_id", reqinfo.RequestID(ctx), "key", key)
		}
		rec.flushTo(w)
	})
}

func (s *Server) replay(w http.ResponseWriter, r *http.Request, p auth.Principal, who db.ReserveIdempotencyKeyParams) {
	ctx := r.Context()
	stored, err := tenancy.ReadV(ctx, s.db, scope(p), func(q *db.Queries) (db.GetIdempotencyRecordRow, error) {
		return q.GetIdempotencyRecord(ctx, db.GetIdempotencyRecordParams{UserID: p.User, Key: who.Key})
	})
	switch {
	case problem.Is(err, problem.NotFound):
		s.writeError(w, r, problem.New(problem.Conflict, "The Idempotency-Key was just released; retry."))
	case err != nil:
		s.writeError(w, r, err)
	case stored.Operation != who.Operation || !bytes.Equal(stored.RequestHash, who.RequestHash):
		s.writeError(w, r, problem.New(problem.Unprocessable, "This Idempotency-Key was already used with a different request."))
	case stored.Status == nil:
		s.writeError(w, r, problem.New(problem.Conflict, "A request with this Idempotency-Key is still in progress."))
	default:
		var headers map[string]string
		_ = json.Unmarshal(stored.Headers, &headers) // written by replayHeaders
		for k, v := range headers {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Idempotent-Replayed", "true")
		w.WriteHeader(int(*stored.Status))
		_, _ = w.Write(stored.Response)
	}
}

// fingerprint identifies a request: its method, path and JSON body in canonical form (so key
// order and spacing do not matter). A password is represented only by whether there is one: a
// fast hash of it, kept for a day, would be an offline guessing target. So a retry that changes
// nothing but the password replays the first result.
func fingerprint(op string, body []byte) []byte {
	h := sha256.New()
	h.Write([]byte(op + "\n"))
	var doc any
	if json.Unmarshal(body, &doc) != nil {
		h.Write(body)
		return h.Sum(nil)
	}
	if obj, ok := doc.(map[string]any); ok {
		if _, has := obj["password"]; has {
			obj["password"] = true
		}
	}
	canonical, _ := json.Marshal(doc) // map keys come out sorted
	h.Write(canonical)
	return h.Sum(nil)
}

// replayHeaders keeps the response headers a replay must repeat.
func replayHeaders(h http.Header) []byte {
	keep := map[string]string{}
	for _, k := range []string{"ETag", "Location"} {
		if v := h.Get(k); v != "" {
			keep[k] = v
		}
	}
	out, _ := json.Marshal(keep)
	return out
}

// shownOnce are the routes whose answer carries a secret shown once: nothing of them is kept.
var shownOnce = map[string]bool{
	"POST /v1/api-keys":                    true,
	"POST /v1/webhooks":                    true,
	"POST /v1/webhooks/{id}/rotate-secret": true,
}

// withoutSecrets drops secrets shown once from a response kept for replay.
func withoutSecrets(body []byte) []byte { return without(body, "invite_token") }

// without returns a JSON object body minus a top-level field; anything else comes back as is.
func without(body []byte, field string) []byte {
	var doc map[string]json.RawMessage
	if json.Unmarshal(body, &doc) != nil {
		return body
	}
	if _, ok := doc[field]; !ok {
		return body
	}
	delete(doc, field)
	out, err := json.Marshal(doc)
	if err != nil {
		return body
	}
	return out
}

// bufferedResponse holds a response until its idempotency record is stored, so a retry can
// never see the response before the record exists.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(status int) {
	if b.status == 0 {
		b.status = status
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

func (b *bufferedResponse) flushTo(w http.ResponseWriter) {
	for k, vs := range b.header {
		w.Header()[k] = vs
	}
	if b.status == 0 {
		b.status = http.StatusOK
	}
	w.WriteHeader(b.status)
	_, _ = w.Write(b.body.Bytes())
}
