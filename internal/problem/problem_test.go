package problem_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tasker/tasker/internal/problem"
)

func TestPassedDeadlineIsUnavailableWithRetryAfter(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		err        error
		wantStatus int
	}{
		{"deadline", fmt.Errorf("update task: %w", context.DeadlineExceeded), http.StatusServiceUnavailable},
		{"timed out", problem.TimedOut(errors.New("statement timeout")), http.StatusServiceUnavailable},
		{"problem wrapping a deadline keeps its kind", problem.Wrap(problem.Invalid, context.DeadlineExceeded, "Bad body."), http.StatusBadRequest},
		{"cancelled is not a deadline", fmt.Errorf("update task: %w", context.Canceled), http.StatusInternalServerError},
		{"anything else", errors.New("boom"), http.StatusInternalServerError},
	} {
		w := httptest.NewRecorder()
		problem.Write(w, httptest.NewRequest(http.MethodPatch, "/v1/tasks/x", nil), "req-1", tc.err)
		var body problem.Body
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if w.Code != tc.wantStatus || body.Status != tc.wantStatus {
			t.Errorf("%s: status %d (body %d), want %d", tc.name, w.Code, body.Status, tc.wantStatus)
		}
		retry := w.Header().Get("Retry-After")
		if tc.wantStatus == http.StatusServiceUnavailable {
			if retry == "" || body.Type != problem.TypeBase+"unavailable" || strings.Contains(body.Detail, "deadline") || strings.Contains(body.Detail, "statement") {
				t.Errorf("%s: Retry-After %q, body %+v; want a 503 unavailable problem with Retry-After and no internal text", tc.name, retry, body)
			}
		} else if retry != "" {
			t.Errorf("%s: Retry-After %q on a %d", tc.name, retry, w.Code)
		}
	}
}
