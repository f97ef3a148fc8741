package handlers

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"

	"github.com/swaggest/swgui/v5emb"

	"github.com/tasker/tasker/internal/middleware"
	"github.com/tasker/tasker/internal/problem"
	"github.com/tasker/tasker/internal/reqinfo"
)

// inlineBlock finds the inline scripts and styles of a page (and script elements with src,
// which the caller skips).
var inlineBlock = regexp.MustCompile(`(?is)<(script|style)\b([^>]*)>(.*?)</(?:script|style)\s*>`)

// docsHandler serves Swagger UI (embedded, no outside requests) under /docs/ with a Content
// Security Policy that allows only this server's assets and the page's own inline script and
// style, by hash: the page is rendered once here and its inline blocks hashed, so the policy
// follows the swgui version. Images may be data: URIs (Swagger UI's icons). The page may not
// be framed.
func docsHandler() (http.Handler, error) {
	docs := v5emb.New("Tasker API", "/openapi.yaml", "/docs/")
	rec := httptest.NewRecorder()
	docs.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/docs/", nil))
	if rec.Code != http.StatusOK {
		return nil, fmt.Errorf("docs: rendering the Swagger UI page: status %d", rec.Code)
	}
	hashes := map[string][]string{}
	for _, m := range inlineBlock.FindAllStringSubmatch(rec.Body.String(), -1) {
		if strings.Contains(strings.ToLower(m[2]), "src=") {
			continue
		}
		sum := sha256.Sum256([]byte(m[3]))
		kind := strings.ToLower(m[1])
		hashes[kind] = append(hashes[kind], "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'")
	}
	csp := strings.Join([]string{
		"default-src 'self'",
		"script-src " + strings.Join(append([]string{"'self'"}, hashes["script"]...), " "),
		"style-src " + strings.Join(append([]string{"'self'"}, hashes["style"]...), " "),
		"img-src 'self' data:",
		"object-src 'none'",
		"base-uri 'none'",
		"form-action 'self'",
		"frame-ancestors 'none'",
	}, "; ")
	return middleware.CacheControl("no-cache", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Frame-Options", "DENY")
		docs.ServeHTTP(&problemOnNotFound{ResponseWriter: w, r: r}, r)
	})), nil
}

// problemOnNotFound turns the docs file server's plain-text 404 (an asset it does not have)
// into the problem document every other 404 is.
type problemOnNotFound struct {
	http.ResponseWriter
	r        *http.Request
	replaced bool
}

func (p *problemOnNotFound) WriteHeader(status int) {
	if status != http.StatusNotFound {
		p.ResponseWriter.WriteHeader(status)
		return
	}
	p.replaced = true
	p.Header().Del("Content-Length")
	problem.Write(p.ResponseWriter, p.r, reqinfo.RequestID(p.r.Context()), problem.New(problem.NotFound, "No such documentation asset: %s.", p.r.URL.Path))
}

func (p *problemOnNotFound) Write(b []byte) (int, error) {
	if p.replaced {
		return len(b), nil // the file server's own text, already replaced
	}
	return p.ResponseWriter.Write(b)
}
