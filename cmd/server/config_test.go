package main

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/tasker/tasker/internal/password"
	"github.com/tasker/tasker/internal/session"
	"github.com/tasker/tasker/internal/tokens"
)

// testOnlyVariables are documented in the README's table but read by the tests, not the server.
var testOnlyVariables = map[string]bool{"TEST_DATABASE_URL": true}

// TestREADMEListsEveryVariable fails when README.md's configuration table lacks a variable of
// config, gives it another default, or lists one config does not read.
func TestREADMEListsEveryVariable(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Configuration\n")
	if !ok {
		t.Fatal("README.md has no ## Configuration section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	row := regexp.MustCompile("(?m)^\\| `([A-Z0-9_]+)` \\| ([^|]*) \\|")
	documented := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(section, -1) {
		if _, dup := documented[m[1]]; dup {
			t.Errorf("README lists %s twice", m[1])
		}
		documented[m[1]] = strings.TrimSpace(m[2])
	}
	if len(documented) == 0 {
		t.Fatal("found no rows in the README's configuration table")
	}

	params, err := env.GetFieldParams(&config{})
	if err != nil {
		t.Fatal(err)
	}
	read := map[string]bool{}
	for _, p := range params {
		read[p.Key] = true
		cell, ok := documented[p.Key]
		want := "(none)"
		if p.HasDefaultValue {
			want = "`" + p.DefaultValue + "`"
		}
		switch {
		case !ok:
			t.Errorf("README's configuration table lacks %s; add | `%s` | %s | %s |", p.Key, p.Key, want, describe(p.Key))
		case p.HasDefaultValue && cell != want:
			t.Errorf("README gives %s the default %s; config's is %s", p.Key, cell, want)
		case !p.HasDefaultValue && !strings.HasPrefix(cell, "("):
			t.Errorf("README gives %s the default %s; config has none, so say why in parentheses, like (none)", p.Key, cell)
		}
	}
	for name := range documented {
		if !read[name] && !testOnlyVariables[name] {
			t.Errorf("README documents %s, which config does not read", name)
		}
	}
	for name := range testOnlyVariables {
		if read[name] {
			t.Errorf("%s is test-only but config reads it", name)
		}
		if _, ok := documented[name]; !ok {
			t.Errorf("README's configuration table lacks the test variable %s", name)
		}
	}
}

func describe(key string) string {
	for f := range reflect.TypeFor[config]().Fields() {
		if envName(f) == key {
			return f.Tag.Get("desc")
		}
	}
	return ""
}

func TestConfigDefaultsAreThePackagesDefaults(t *testing.T) {
	t.Parallel()
	c, err := loadConfig(map[string]string{"DATABASE_URL": "postgres://x/y"})
	if err != nil {
		t.Fatal(err)
	}
	if c.argon2() != password.DefaultParams {
		t.Errorf("argon2 defaults %+v, want password.DefaultParams %+v", c.argon2(), password.DefaultParams)
	}
	want := session.DefaultConfig
	if got := c.sessions(); got != want {
		t.Errorf("session defaults %+v, want session.DefaultConfig %+v", got, want)
	}
	if c.ReadHeaderTimeout != 5*time.Second || c.ReadTimeout != 30*time.Second || c.WriteTimeout != time.Minute ||
		c.IdleTimeout != 2*time.Minute || c.RequestTimeout != 30*time.Second {
		t.Errorf("server timeouts %s %s %s %s %s", c.ReadHeaderTimeout, c.ReadTimeout, c.WriteTimeout, c.IdleTimeout, c.RequestTimeout)
	}
}

func TestConfigRefusesNonPositiveValuesAndCapsLargeOnes(t *testing.T) {
	t.Parallel()
	c, err := loadConfig(map[string]string{"DATABASE_URL": "postgres://x/y",
		"DB_MAX_CONNS": "5000", "ARGON2_THREADS": "300", "ARGON2_MEMORY_KIB": "99999999999", "LOGIN_RATE_PER_IP": "7"})
	if err != nil {
		t.Fatal(err)
	}
	if c.DBMaxConns != 1000 || c.Argon2Threads != 255 || c.argon2().Threads != 255 || c.argon2().Memory != 4<<20 || c.sessions().LoginPerIP != 7 {
		t.Errorf("capped: conns %d, argon2 %+v, login per IP %d", c.DBMaxConns, c.argon2(), c.sessions().LoginPerIP)
	}

	for name, value := range map[string]string{
		"DB_MAX_CONNS": "0", "MAX_BODY_BYTES": "-1", "ARGON2_TIME": "1.5", "LOGIN_RATE_PER_ACCOUNT": "ten",
		"REQUEST_TIMEOUT": "0s", "IDLE_TIMEOUT": "-1m", "READ_TIMEOUT": "30", "SESSION_MAX_AGE": "forever",
	} {
		_, err := loadConfig(map[string]string{"DATABASE_URL": "postgres://x/y", name: value})
		if err == nil || !strings.Contains(err.Error(), name+"=") || strings.Count(err.Error(), name) != 1 {
			t.Errorf("%s=%q: error %v; want it refused once, by name", name, value, err)
		}
	}
	_, err = loadConfig(map[string]string{"DATABASE_URL": "postgres://x/y", "REQUEST_TIMEOUT": "1m", "WRITE_TIMEOUT": "1m"})
	if err == nil || !strings.Contains(err.Error(), "WRITE_TIMEOUT=1m0s: want more than REQUEST_TIMEOUT") {
		t.Errorf("a write timeout no longer than the request timeout: %v; want it refused", err)
	}
	_, err = loadConfig(map[string]string{"DATABASE_URL": "postgres://x/y", "EVENT_RETENTION": "10m"})
	if err == nil || !strings.Contains(err.Error(), "EVENT_RETENTION=10m0s: want at least an hour") {
		t.Errorf("a retention shorter than the revocation catch-up needs: %v; want it refused", err)
	}
	for _, env := range []map[string]string{
		{"FILE_SWEEP_GRACE": "1h"},
		{"FILE_TRANSFER_TIMEOUT": "3h"},
		{"FILE_STORE": "ftp"},
		{"FILE_STORE": "s3"},
		{"FILE_URL_SECRET": "too short"},
		{"PUBLIC_URL": "api.example.com"},
	} {
		env["DATABASE_URL"] = "postgres://x/y"
		if _, err := loadConfig(env); err == nil {
			t.Errorf("%v: accepted", env)
		}
	}
	if c, err := loadConfig(map[string]string{"DATABASE_URL": "postgres://x/y", "PUBLIC_URL": "https://api.example.com/"}); err != nil || c.PublicURL != "https://api.example.com" {
		t.Errorf("PUBLIC_URL with a trailing slash: %q %v", c.PublicURL, err)
	}
	_, err = loadConfig(map[string]string{"DATABASE_URL": ""})
	if err == nil || !strings.Contains(err.Error(), "DATABASE_URL is empty") {
		t.Errorf("empty DATABASE_URL: %v; want it refused", err)
	}
}

// TestLoggedConfigMasksSecrets logs a config holding every kind of secret: none of them may
// show, and every string variable named like a secret must carry a mask tag.
func TestLoggedConfigMasksSecrets(t *testing.T) {
	t.Parallel()
	pem := string(tokens.EncodePEM(tokens.GenerateKey()))
	other := string(tokens.EncodePEM(tokens.GenerateKey()))
	file := filepath.Join(t.TempDir(), "keys.pem")
	if err := os.WriteFile(file, []byte(other), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := loadConfig(map[string]string{
		"DATABASE_URL": "postgres://app:hunter2@db.internal:6432/tasker", "JWT_SIGNING_KEYS": pem, "JWT_SIGNING_KEYS_FILE": file,
	})
	if err != nil {
		t.Fatal(err)
	}
	logged := c.LogValue().String()
	for _, secret := range []string{"hunter2", "PRIVATE KEY", pemBody(pem), pemBody(other)} {
		if strings.Contains(logged, secret) {
			t.Errorf("logged config shows %q: %s", secret, logged)
		}
	}
	for _, want := range []string{"host=db.internal port=6432 dbname=tasker user=app", "jwt_signing_keys_set=true",
		"jwt_signing_keys_file_set=true", "shutdown_timeout=20s", "log_level=INFO", "db_max_conns=10"} {
		if !strings.Contains(logged, want) {
			t.Errorf("logged config lacks %q: %s", want, logged)
		}
	}
	if string(c.signingKeysPEM()) != other {
		t.Error("JWT_SIGNING_KEYS_FILE does not take precedence over JWT_SIGNING_KEYS")
	}

	secretName := regexp.MustCompile(`KEY|SECRET|PASSWORD|TOKEN|DATABASE_URL|DSN`)
	for f := range reflect.TypeFor[config]().Fields() {
		if f.Type.Kind() == reflect.String && secretName.MatchString(envName(f)) && f.Tag.Get("mask") == "" {
			t.Errorf("%s looks like a secret but has no mask tag", envName(f))
		}
	}
}

// pemBody is a stretch of the key material of a PEM block.
func pemBody(pem string) string {
	lines := strings.Split(pem, "\n")
	return lines[1][:20]
}
