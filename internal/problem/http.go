package problem

import (
	"encoding/json"
	"net/http"
)

// Body is the RFC 9457 document written to clients; it matches the Problem schema of the API.
type Body struct {
	Type      string       `json:"type"`
	Title     string       `json:"title"`
	Status    int          `json:"status"`
	Detail    string       `json:"detail,omitempty"`
	Instance  string       `json:"instance,omitempty"`
	RequestID string       `json:"request_id,omitempty"`
	Errors    []FieldError `json:"errors,omitempty"`
	// ErrorCount is how many fields failed; Errors lists at most the first 20.
	ErrorCount int `json:"error_count,omitempty"`
	// The plan limit of a 402 (limit-exceeded).
	*Limit
}

// BodyOf renders err for the client. Internal errors keep their cause out of the body.
func BodyOf(err error, instance, requestID string) Body {
	pe := As(err)
	b := Body{
		Type:      pe.Kind.Type(),
		Title:     pe.Kind.Title(),
		Status:    pe.Kind.Status(),
		Detail:    pe.Detail,
		Instance:  instance,
		RequestID: requestID,
		Errors:    pe.Fields,
		Limit:     pe.Limit,
	}
	if len(pe.Fields) > 0 {
		b.ErrorCount = max(pe.FieldCount, len(pe.Fields))
	}
	if pe.Kind == Internal {
		b.Detail = "The server failed to handle the request; quote the request id when reporting it."
	}
	return b
}

// Write sends err as application/problem+json. requestID may be empty.
func Write(w http.ResponseWriter, r *http.Request, requestID string, err error) {
	pe := As(err)
	for k, vs := range pe.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	body := BodyOf(err, r.URL.Path, requestID)
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(body.Status)
	_ = json.NewEncoder(w).Encode(body)
}
