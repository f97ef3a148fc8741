package handlers_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/tasker/tasker/handlers/apitest"
)

// FuzzLoginBody posts arbitrary bodies to the login endpoint: none may sign anyone in, and
// none may make the server fail; every rejection must be a problem document.
func FuzzLoginBody(f *testing.F) {
	env := apitest.New(f)
	a := env.Signup(f)
	seed := func(v any) { b, _ := json.Marshal(v); f.Add(b) }
	seed(map[string]string{"tenant_slug": a.Slug, "email": a.Email, "password": "wrong password"})
	seed(map[string]any{"tenant_slug": a.Slug, "email": a.Email, "password": nil})
	seed(map[string]any{"tenant_slug": a.Slug, "email": []string{a.Email}, "password": a.Password + "x"})
	seed(map[string]string{"tenant_slug": a.Slug + "'--", "email": a.Email + "' OR 1=1 --", "password": "x"})
	f.Add([]byte(`{"tenant_slug":"` + a.Slug + `","email":"` + a.Email + `","password":"` + a.Password + `x","admin":true}`))
	f.Add([]byte(`{`))
	f.Add([]byte(``))
	f.Add([]byte(`[]`))
	f.Add([]byte("{\"tenant_slug\":\"\u0000\",\"email\":\"\xff\",\"password\":\"\"}"))

	f.Fuzz(func(t *testing.T, body []byte) {
		resp, err := http.Post(env.URL+"/v1/auth/login", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		switch {
		case resp.StatusCode == http.StatusOK:
			t.Fatalf("body %q signed in: %s", body, out)
		case resp.StatusCode >= 500:
			t.Fatalf("body %q made the server fail: %d %s", body, resp.StatusCode, out)
		case resp.Header.Get("Content-Type") != "application/problem+json":
			t.Fatalf("body %q: %d with content type %q", body, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	})
}
