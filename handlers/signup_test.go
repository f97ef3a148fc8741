package handlers_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	openapi_types "github.com/oapi-codegen/runtime/types"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/handlers/apitest"
	"github.com/tasker/tasker/internal/password"
	"github.com/tasker/tasker/internal/tenancy"
	"github.com/tasker/tasker/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

func slug(prefix string) string { return fmt.Sprintf("%s-%s", prefix, uuid.NewString()[:8]) }

func validSignup(s string) api.SignupRequest {
	return api.SignupRequest{
		TenantName: "Acme Inc.", TenantSlug: s,
		Email: openapi_types.Email("Ada@Acme.test"), Password: "correct horse battery", Name: "Ada Lovelace",
	}
}

func TestSignupCreatesTenantAndOwner(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	ctx := context.Background()
	s := slug("acme")
	resp, err := env.Client.SignupWithResponse(ctx, validSignup(s))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode() != http.StatusCreated || resp.JSON201 == nil {
		t.Fatalf("status %d, body %s", resp.StatusCode(), resp.Body)
	}
	got := resp.JSON201
	if got.Tenant.Slug != s || got.Tenant.Name != "Acme Inc." || got.Tenant.Plan != api.TenantPlanFree {
		t.Errorf("tenant = %+v", got.Tenant)
	}
	if got.User.Role != api.UserRoleOwner || got.User.Status != api.UserStatusActive || got.User.Email != "ada@acme.test" {
		t.Errorf("owner = %+v; want an active owner with the lower-cased email", got.User)
	}

	// The rows exist under the new tenant, and the stored password is an argon2id hash of it.
	err = env.DB.Write(ctx, tenancy.Scope{Tenant: got.Tenant.Id}, func(tx *tenancy.Tx) error {
		q := tx.Q
		u, err := q.GetUser(ctx, got.User.Id)
		if err != nil {
			return err
		}
		if u.TenantID != got.Tenant.Id || u.PasswordHash == nil {
			return fmt.Errorf("stored user %+v", u)
		}
		return password.Verify("correct horse battery", *u.PasswordHash)
	})
	if err != nil {
		t.Fatalf("stored owner: %v", err)
	}
}

func TestSignupWithTakenSlugIsConflict(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	ctx := context.Background()
	s := slug("taken")
	first, err := env.Client.SignupWithResponse(ctx, validSignup(s))
	if err != nil || first.StatusCode() != http.StatusCreated {
		t.Fatalf("first signup: %v %s", err, first.Body)
	}
	second, err := env.Client.SignupWithResponse(ctx, validSignup(s))
	if err != nil {
		t.Fatal(err)
	}
	p := problemIn(second.Body)
	if second.StatusCode() != http.StatusConflict || p == nil || p.Status != http.StatusConflict || !strings.Contains(*p.Detail, s) {
		t.Fatalf("second signup: status %d, body %s; want a 409 problem naming the slug", second.StatusCode(), second.Body)
	}
}

func TestSignupRejectsBodiesTheSpecForbids(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	ctx := context.Background()
	cases := []struct {
		name   string
		body   string
		fields []string
	}{
		{"missing email", `{"tenant_name":"A","tenant_slug":"%s","password":"correct horse","name":"A"}`, []string{"email"}},
		{"slug with capitals", `{"tenant_name":"A","tenant_slug":"%s-BAD","email":"a@b.test","password":"correct horse","name":"A"}`, []string{"tenant_slug"}},
		{"slug too short", `{"tenant_name":"A","tenant_slug":"a","email":"a@b.test","password":"correct horse","name":"A","x":"%s"}`, []string{"tenant_slug", "x"}},
		{"bad email", `{"tenant_name":"A","tenant_slug":"%s","email":"not-an-email","password":"correct horse","name":"A"}`, []string{"email"}},
		{"short password", `{"tenant_name":"A","tenant_slug":"%s","email":"a@b.test","password":"short","name":"A"}`, []string{"password"}},
		{"long password", `{"tenant_name":"A","tenant_slug":"%s","email":"a@b.test","password":"` + strings.Repeat("p", 257) + `","name":"A"}`, []string{"password"}},
		{"unknown field", `{"tenant_name":"A","tenant_slug":"%s","email":"a@b.test","password":"correct horse","name":"A","admin":true}`, []string{"admin"}},
		{"wrong type", `{"tenant_name":7,"tenant_slug":"%s","email":"a@b.test","password":"correct horse","name":"A"}`, []string{"tenant_name"}},
		{"empty name", `{"tenant_name":"A","tenant_slug":"%s","email":"a@b.test","password":"correct horse","name":""}`, []string{"name"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := slug("bad")
			resp, err := env.Client.SignupWithBodyWithResponse(ctx, "application/json", strings.NewReader(fmt.Sprintf(tc.body, s)))
			if err != nil {
				t.Fatal(err)
			}
			p := problemIn(resp.Body)
			if resp.StatusCode() != http.StatusBadRequest || p == nil || p.Errors == nil {
				t.Fatalf("status %d, body %s; want a 400 problem with field errors", resp.StatusCode(), resp.Body)
			}
			var named []string
			for _, f := range *p.Errors {
				named = append(named, f.Field)
				if f.In != api.Body || f.Message == "" || strings.Contains(f.Message, "Schema:") {
					t.Errorf("field error %+v: want a short message about the body", f)
				}
			}
			for _, want := range tc.fields {
				if !slices.Contains(named, want) {
					t.Errorf("errors name %v; want %q among them", named, want)
				}
			}
			// Nothing was written: the slug is still free.
			if !strings.Contains(tc.body, "BAD") && tc.name != "slug too short" {
				ok, err := env.Client.SignupWithResponse(ctx, validSignup(s))
				if err != nil || ok.StatusCode() != http.StatusCreated {
					t.Errorf("after a rejected signup the slug %s is not free: %v %s", s, err, ok.Body)
				}
			}
		})
	}
}

func TestSignupNeedsJSON(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	resp, err := env.Client.SignupWithBodyWithResponse(context.Background(), "text/plain", strings.NewReader(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode() != http.StatusUnsupportedMediaType || problemIn(resp.Body) == nil {
		t.Fatalf("status %d, body %s; want a 415 problem", resp.StatusCode(), resp.Body)
	}
}

func TestMalformedJSONIsBadRequest(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	resp, err := env.Client.SignupWithBodyWithResponse(context.Background(), "application/json", strings.NewReader(`{"tenant_name": "A",`))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode() != http.StatusBadRequest || problemIn(resp.Body) == nil {
		t.Fatalf("status %d, body %s; want a 400 problem", resp.StatusCode(), resp.Body)
	}
}

func TestOversizedBodyIsTooLarge(t *testing.T) {
	t.Parallel()
	env := apitest.NewWithOptions(t, apitest.Options{MaxBodyBytes: 256})
	body := validSignup(slug("big"))
	body.TenantName = strings.Repeat("x", 190)
	body.Name = strings.Repeat("y", 190)
	resp, err := env.Client.SignupWithResponse(context.Background(), body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode() != http.StatusRequestEntityTooLarge || problemIn(resp.Body) == nil {
		t.Fatalf("status %d, body %s; want a 413 problem", resp.StatusCode(), resp.Body)
	}
}

var errStop = errors.New("stop")

func TestSignupsOfTwoTenantsStayApart(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	ctx := context.Background()
	a, err := env.Client.SignupWithResponse(ctx, validSignup(slug("a")))
	if err != nil || a.JSON201 == nil {
		t.Fatalf("signup a: %v", err)
	}
	b, err := env.Client.SignupWithResponse(ctx, validSignup(slug("b")))
	if err != nil || b.JSON201 == nil {
		t.Fatalf("signup b: %v", err)
	}
	// Same email in two tenants is fine; and A cannot read B's owner.
	err = env.DB.Write(ctx, tenancy.Scope{Tenant: a.JSON201.Tenant.Id}, func(tx *tenancy.Tx) error {
		q := tx.Q
		if _, err := q.GetUser(ctx, b.JSON201.User.Id); err == nil {
			t.Error("tenant A read tenant B's owner")
		}
		if _, err := q.GetTenant(ctx, b.JSON201.Tenant.Id); err == nil {
			t.Error("tenant A read tenant B's tenant row")
		}
		return errStop
	})
	if !errors.Is(err, errStop) {
		t.Fatal(err)
	}
}
