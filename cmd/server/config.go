package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stripe/stripe-go/v82"

	"github.com/tasker/tasker/handlers"
	"github.com/tasker/tasker/internal/billing"
	"github.com/tasker/tasker/internal/blob"
	"github.com/tasker/tasker/internal/files"
	"github.com/tasker/tasker/internal/middleware"
	"github.com/tasker/tasker/internal/password"
	"github.com/tasker/tasker/internal/realtime"
	"github.com/tasker/tasker/internal/secretbox"
	"github.com/tasker/tasker/internal/session"
	"github.com/tasker/tasker/internal/sso"
	"github.com/tasker/tasker/internal/tenancy"
	"github.com/tasker/tasker/internal/tokens"
	"github.com/tasker/tasker/internal/webhooks"
)

// config is the whole configuration, read once from the environment by loadConfig. A variable is
// one field: env names it (required ones say so), envDefault is its default, desc is its line in
// README.md's configuration table (TestREADMEListsEveryVariable keeps the table in step).
// loadConfig holds every integer to be positive, capped at its max tag, and every duration to be
// positive. mask keeps secrets out of the start-up log: "dsn" logs a connection string without
// its credentials, "secret" only whether the value is set.
type config struct {
	ListenAddr      string        `env:"LISTEN_ADDR" envDefault:":8080" desc:"address the HTTP server listens on"`
	DatabaseURL     string        `env:"DATABASE_URL,required,notEmpty" mask:"dsn" desc:"PostgreSQL URL"`
	DBMaxConns      int64         `env:"DB_MAX_CONNS" envDefault:"10" max:"1000" desc:"size of the connection pool"`
	LogLevel        slog.Level    `env:"LOG_LEVEL" envDefault:"info" desc:"debug, info, warn or error"`
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"20s" desc:"how long in-flight requests may take to finish on SIGTERM"`

	ReadHeaderTimeout time.Duration `env:"READ_HEADER_TIMEOUT" envDefault:"5s" desc:"time a client has to send the request headers"`
	ReadTimeout       time.Duration `env:"READ_TIMEOUT" envDefault:"30s" desc:"time a client has to send the whole request, body included"`
	WriteTimeout      time.Duration `env:"WRITE_TIMEOUT" envDefault:"60s" desc:"time from the end of the headers to the end of the response; above REQUEST_TIMEOUT"`
	IdleTimeout       time.Duration `env:"IDLE_TIMEOUT" envDefault:"120s" desc:"how long a keep-alive connection may wait for its next request"`
	RequestTimeout    time.Duration `env:"REQUEST_TIMEOUT" envDefault:"30s" desc:"deadline of a request's work; past it the answer is 503 with Retry-After"`
	MaxBodyBytes      int64         `env:"MAX_BODY_BYTES" envDefault:"1048576" desc:"largest JSON request body"`

	Argon2MemoryKiB int64 `env:"ARGON2_MEMORY_KIB" envDefault:"19456" max:"4194304" desc:"argon2id memory per password hash"`
	Argon2Time      int64 `env:"ARGON2_TIME" envDefault:"2" max:"100" desc:"argon2id passes"`
	Argon2Threads   int64 `env:"ARGON2_THREADS" envDefault:"1" max:"255" desc:"argon2id lanes"`

	// SigningKeysFile and SigningKeys hold Ed25519 private keys (PKCS #8 PEM); the first signs.
	// The env library reads the file named by JWT_SIGNING_KEYS_FILE, so the field holds its content.
	SigningKeysFile string        `env:"JWT_SIGNING_KEYS_FILE,file" mask:"secret" desc:"PEM file of Ed25519 private keys; the first signs"`
	SigningKeys     string        `env:"JWT_SIGNING_KEYS" mask:"secret" desc:"the same PEM, inline"`
	JWTIssuer       string        `env:"JWT_ISSUER" envDefault:"tasker" desc:"iss of access tokens"`
	JWTAudience     string        `env:"JWT_AUDIENCE" envDefault:"tasker-api" desc:"aud of access tokens"`
	AccessTTL       time.Duration `env:"ACCESS_TOKEN_TTL" envDefault:"15m" desc:"lifetime of access tokens"`

	RefreshGrace        time.Duration `env:"REFRESH_GRACE" envDefault:"10s" desc:"how long a rotated refresh token still yields its successor"`
	SessionMaxAge       time.Duration `env:"SESSION_MAX_AGE" envDefault:"720h" desc:"a session ends this long after sign-in"`
	SessionIdleTimeout  time.Duration `env:"SESSION_IDLE_TIMEOUT" envDefault:"168h" desc:"a session ends after this long without a refresh"`
	LoginRatePerIP      int64         `env:"LOGIN_RATE_PER_IP" envDefault:"30" max:"1000000" desc:"credential attempts (sign-in, sign-up, invitation acceptance) a minute per client IP, or per IPv6 /64"`
	LoginRatePerAccount int64         `env:"LOGIN_RATE_PER_ACCOUNT" envDefault:"10" max:"1000000" desc:"failed logins a minute per account"`

	CORSAllowedOrigins origins `env:"CORS_ALLOWED_ORIGINS" desc:"comma-separated exact origins whose browser clients may call the API"`

	RealtimeEnabled           bool          `env:"REALTIME_ENABLED" envDefault:"true" desc:"serve GET /v1/realtime and wake other instances on every write (NOTIFY)"`
	RealtimeAllowedOrigins    origins       `env:"REALTIME_ALLOWED_ORIGINS" desc:"comma-separated exact browser origins allowed to open the WebSocket besides the server's own"`
	RealtimeMaxConnsPerUser   int64         `env:"REALTIME_MAX_CONNECTIONS_PER_USER" envDefault:"20" max:"1000000" desc:"open sockets per user on one instance (429 beyond)"`
	RealtimeMaxSubscriptions  int64         `env:"REALTIME_MAX_SUBSCRIPTIONS" envDefault:"100" max:"100000" desc:"topics one socket may subscribe to"`
	RealtimeMaxMessageBytes   int64         `env:"REALTIME_MAX_MESSAGE_BYTES" envDefault:"4096" max:"1048576" desc:"largest client message; a larger frame closes the socket with 1009"`
	RealtimeMessagesPerSecond int64         `env:"REALTIME_MESSAGES_PER_SECOND" envDefault:"20" max:"100000" desc:"client messages and pings a second per socket; beyond closes it with 1008"`
	RealtimeSendQueue         int64         `env:"REALTIME_SEND_QUEUE" envDefault:"256" max:"1000000" desc:"messages waiting for a socket beyond what its TCP buffers hold; more close it with 4008 (slow consumer)"`
	RealtimePingInterval      time.Duration `env:"REALTIME_PING_INTERVAL" envDefault:"25s" desc:"how often the server pings each socket"`
	RealtimePingTimeout       time.Duration `env:"REALTIME_PING_TIMEOUT" envDefault:"10s" desc:"a socket whose pong takes longer is dropped"`
	EventRetention            time.Duration `env:"EVENT_RETENTION" envDefault:"24h" desc:"how long events are kept for replays (since); older ones are pruned; at least 1h and above ACCESS_TOKEN_TTL"`

	FileStore           string        `env:"FILE_STORE" envDefault:"dir" desc:"where file contents live: dir (FILE_DIR) or s3 (the S3_ variables)"`
	FileDir             string        `env:"FILE_DIR" envDefault:"data/files" desc:"directory of the dir store; created if missing"`
	FileMaxBytes        int64         `env:"FILE_MAX_BYTES" envDefault:"104857600" max:"1099511627776" desc:"largest upload (413 beyond)"`
	FileAllowedTypes    []string      `env:"FILE_ALLOWED_TYPES" desc:"comma-separated media types accepted, as sniffed from the content; empty takes the default list (README)"`
	FileURLTTL          time.Duration `env:"FILE_URL_TTL" envDefault:"5m" desc:"lifetime of signed download URLs"`
	FileURLSecret       string        `env:"FILE_URL_SECRET" mask:"secret" desc:"HMAC key of the dir store's signed URLs (32+ bytes); empty derives one from the first JWT signing key"`
	PublicURL           string        `env:"PUBLIC_URL" desc:"scheme and host clients reach the API at (https://api.example.com), for signed URLs; empty takes the request's Host"`
	FileTransferTimeout time.Duration `env:"FILE_TRANSFER_TIMEOUT" envDefault:"1h" desc:"time an upload or download may take; replaces REQUEST_TIMEOUT, READ_TIMEOUT and WRITE_TIMEOUT for them once the caller is authenticated"`
	FileIdleTimeout     time.Duration `env:"FILE_IDLE_TIMEOUT" envDefault:"60s" desc:"an upload or download that moves no byte for this long is cut"`
	FileMaxUploads      int64         `env:"FILE_MAX_UPLOADS_PER_TENANT" envDefault:"8" max:"10000" desc:"uploads one tenant may run at once on one instance (429 beyond)"`
	FileSweepInterval   time.Duration `env:"FILE_SWEEP_INTERVAL" envDefault:"10m" desc:"how often each instance removes blobs without metadata"`
	FileSweepGrace      time.Duration `env:"FILE_SWEEP_GRACE" envDefault:"2h" desc:"age a blob without metadata must reach before the sweep removes it"`
	S3Endpoint          string        `env:"S3_ENDPOINT" desc:"S3 API URL; empty is AWS's own (set it for MinIO, R2, Ceph ...)"`
	S3Region            string        `env:"S3_REGION" envDefault:"us-east-1" desc:"S3 region"`
	S3Bucket            string        `env:"S3_BUCKET" desc:"S3 bucket (required with FILE_STORE=s3)"`
	S3AccessKeyID       string        `env:"S3_ACCESS_KEY_ID" mask:"secret" desc:"S3 access key; empty uses the AWS default credential chain"`
	S3SecretAccessKey   string        `env:"S3_SECRET_ACCESS_KEY" mask:"secret" desc:"S3 secret key"`
	S3PathStyle         bool          `env:"S3_PATH_STYLE" envDefault:"false" desc:"address the bucket in the path (MinIO, most S3-compatible servers)"`

	PlanLimitsFree       limits        `env:"PLAN_LIMITS_FREE" envDefault:"seats=5 projects=10 storage=1GiB" desc:"limits of the free plan (also of canceled, unpaid and long past_due subscriptions): seats=N projects=N storage=SIZE, each a number or unlimited"`
	PlanLimitsPro        limits        `env:"PLAN_LIMITS_PRO" envDefault:"seats=50 projects=unlimited storage=100GiB" desc:"limits of the pro plan"`
	PlanLimitsEnterprise limits        `env:"PLAN_LIMITS_ENTERPRISE" envDefault:"seats=unlimited projects=unlimited storage=unlimited" desc:"limits of the enterprise plan"`
	PastDueGrace         time.Duration `env:"BILLING_PAST_DUE_GRACE" envDefault:"168h" desc:"how long a past_due subscription keeps its plan's limits before the free plan's apply"`
	StripeSecretKey      string        `env:"STRIPE_SECRET_KEY" mask:"secret" desc:"Stripe API key (sk_... or rk_...); empty turns checkout and portal off (503)"`
	StripeAPIURL         string        `env:"STRIPE_API_URL" envDefault:"https://api.stripe.com" desc:"Stripe API base URL (a local stand-in such as stripe-mock in tests)"`
	StripeWebhookSecrets []string      `env:"STRIPE_WEBHOOK_SECRET" mask:"secret" desc:"comma-separated whsec_ signing secrets of the webhook endpoint, any of which is accepted (two while rotating); empty answers the webhook 503"`
	StripeWebhookTol     time.Duration `env:"STRIPE_WEBHOOK_TOLERANCE" envDefault:"300s" desc:"how old a webhook signature's timestamp may be"`
	StripeWebhookMax     int64         `env:"STRIPE_WEBHOOK_MAX_BYTES" envDefault:"262144" max:"16777216" desc:"largest webhook body read (413 beyond)"`
	StripePrices         string        `env:"STRIPE_PRICES" desc:"comma-separated price_id:plan pairs (plan pro or enterprise); the first price of a plan is what checkout sells, and a price not listed grants the free plan's limits"`
	SSOEncryptionKey     string        `env:"SSO_ENCRYPTION_KEY" mask:"secret" desc:"base64 of 32 random bytes (openssl rand -base64 32) that seal the tenants' SSO client secrets (AES-256-GCM); empty turns the SSO endpoints off (503). Keep it: secrets sealed with a lost key must be entered again"`
	SSOAllowInsecure     bool          `env:"SSO_ALLOW_INSECURE_ISSUERS" envDefault:"false" desc:"accept http issuers and issuers on loopback or private addresses (development, tests, a provider inside your network); otherwise https on public addresses only"`
	SSORedirectURIs      redirectURIs  `env:"SSO_REDIRECT_URIS" desc:"comma-separated exact URLs of your frontends' SSO pages (https://app.example.com/sso); a sign-in returns there with ?code= or ?error=, the first also gets errors whose frontend is unknown; empty turns SSO sign-in off"`
	SSOStateTTL          time.Duration `env:"SSO_STATE_TTL" envDefault:"10m" desc:"how long an SSO sign-in may take at the provider"`
	SSOCodeTTL           time.Duration `env:"SSO_CODE_TTL" envDefault:"60s" desc:"lifetime of the one-time code an SSO sign-in hands the frontend"`
	WebhookEncryptionKey string        `env:"WEBHOOK_ENCRYPTION_KEY" mask:"secret" desc:"base64 of 32 random bytes (openssl rand -base64 32) that seal the webhook endpoints' signing secrets (AES-256-GCM); empty turns creating endpoints off (503). Keep it: endpoints sealed under a lost key need a new secret"`
	WebhookAllowPrivate  bool          `env:"WEBHOOK_ALLOW_PRIVATE" envDefault:"false" desc:"let webhook endpoints be on loopback, private, link-local or other non-public addresses (development, tests, receivers inside your network)"`
	WebhookOverlap       time.Duration `env:"WEBHOOK_ROTATION_OVERLAP" envDefault:"24h" desc:"how long a rotated webhook secret keeps signing deliveries beside the new one"`
	WebhookMaxEndpoints  int64         `env:"WEBHOOK_MAX_ENDPOINTS" envDefault:"20" max:"1000" desc:"webhook endpoints per tenant (409 beyond)"`
	WebhookTimeout       time.Duration `env:"WEBHOOK_TIMEOUT" envDefault:"10s" desc:"time one delivery attempt may take, from connecting to the receiver's answer"`
	WebhookAttempts      int64         `env:"WEBHOOK_ATTEMPTS" envDefault:"16" max:"100" desc:"attempts of one delivery before it fails (16 with the default delays span about 30 hours)"`
	WebhookRetryBase     time.Duration `env:"WEBHOOK_RETRY_BASE" envDefault:"30s" desc:"delay after a delivery's first failed attempt; each next one doubles, less up to a quarter of jitter"`
	WebhookRetryMax      time.Duration `env:"WEBHOOK_RETRY_MAX" envDefault:"6h" desc:"longest delay between two attempts of a delivery"`
	WebhookConcurrency   int64         `env:"WEBHOOK_ENDPOINT_CONCURRENCY" envDefault:"4" max:"1000" desc:"attempts to one endpoint in flight at once, across every server"`
	WebhookTenantConc    int64         `env:"WEBHOOK_TENANT_CONCURRENCY" envDefault:"10" max:"10000" desc:"attempts of one tenant in flight at once, across every server (keep it below WEBHOOK_WORKERS, so one tenant's slow receivers cannot hold every worker)"`
	WebhookManual        int64         `env:"WEBHOOK_MANUAL_SENDS_PER_MINUTE" envDefault:"60" max:"100000" desc:"test pings and redeliveries a tenant may queue a minute on one server (429 beyond)"`
	WebhookWorkers       int64         `env:"WEBHOOK_WORKERS" envDefault:"20" max:"10000" desc:"first delivery attempts this server sends at once"`
	WebhookSlowAfter     time.Duration `env:"WEBHOOK_SLOW_AFTER" envDefault:"2s" desc:"an endpoint whose last attempt took longer has its deliveries sent by WEBHOOK_RETRY_WORKERS, with the failing ones"`
	WebhookRetryWorkers  int64         `env:"WEBHOOK_RETRY_WORKERS" envDefault:"10" max:"10000" desc:"attempts to failing endpoints (retries, and deliveries to an endpoint whose last attempt failed) this server sends at once, apart from WEBHOOK_WORKERS"`
	WebhookDisableAfter  time.Duration `env:"WEBHOOK_DISABLE_AFTER" envDefault:"120h" desc:"an endpoint whose attempts have all failed for this long is disabled, with an audit entry"`
	WebhookRetention     time.Duration `env:"WEBHOOK_DELIVERY_RETENTION" envDefault:"720h" desc:"how long finished webhook deliveries and their attempts stay listed (at least a day)"`
	WebhookSweep         time.Duration `env:"WEBHOOK_SWEEP_INTERVAL" envDefault:"10s" desc:"how often the dispatcher looks for events that no wake-up announced (after a crash or a lost connection)"`
	BillingReturnURL     string        `env:"BILLING_RETURN_URL" envDefault:"http://localhost:8080/" desc:"page of your app Stripe sends the browser back to after checkout (with ?checkout=success or ?checkout=canceled) and the portal"`
}

// limits are a plan's limits (billing.ParseLimits).
type limits billing.Limits

// UnmarshalText parses "seats=5 projects=10 storage=1GiB".
func (l *limits) UnmarshalText(text []byte) error {
	v, err := billing.ParseLimits(string(text))
	*l = limits(v)
	return err
}

// sso is the SSO configuration: the box that seals client secrets (none without a key) and the
// issuer policy.
func (c config) sso() (handlers.SSOConfig, error) {
	sc := handlers.SSOConfig{Policy: sso.Policy{AllowInsecure: c.SSOAllowInsecure}, RedirectURIs: c.SSORedirectURIs,
		StateTTL: c.SSOStateTTL, CodeTTL: c.SSOCodeTTL}
	if c.SSOEncryptionKey == "" {
		return sc, nil
	}
	key, err := base64.StdEncoding.DecodeString(c.SSOEncryptionKey)
	if err != nil || len(key) != secretbox.KeySize {
		return sc, fmt.Errorf("SSO_ENCRYPTION_KEY: want the base64 of %d bytes (openssl rand -base64 32)", secretbox.KeySize)
	}
	sc.Box, err = secretbox.New(key)
	return sc, err
}

// webhooks is the outbound webhooks' configuration.
func (c config) webhooks() (handlers.WebhooksConfig, error) {
	wc := handlers.WebhooksConfig{Guard: webhooks.Guard{AllowPrivate: c.WebhookAllowPrivate, Timeout: c.WebhookTimeout},
		Overlap: c.WebhookOverlap, MaxEndpoints: int(c.WebhookMaxEndpoints),
		Retry:           webhooks.Retry{Attempts: int(c.WebhookAttempts), Base: c.WebhookRetryBase, Max: c.WebhookRetryMax},
		ManualPerMinute: int(c.WebhookManual)}
	if c.WebhookEncryptionKey == "" {
		return wc, nil
	}
	key, err := base64.StdEncoding.DecodeString(c.WebhookEncryptionKey)
	if err != nil || len(key) != secretbox.KeySize {
		return wc, fmt.Errorf("WEBHOOK_ENCRYPTION_KEY: want the base64 of %d bytes (openssl rand -base64 32)", secretbox.KeySize)
	}
	wc.Box, err = secretbox.New(key)
	return wc, err
}

// deliveries is how outbound webhooks are delivered, given their handlers' configuration.
func (c config) deliveries(wc handlers.WebhooksConfig, store *tenancy.DB, logger *slog.Logger) webhooks.Config {
	return webhooks.Config{DB: store, Box: wc.Box, Guard: wc.Guard, Retry: wc.Retry, Concurrency: int(c.WebhookConcurrency), TenantConcurrency: int(c.WebhookTenantConc),
		DisableAfter: c.WebhookDisableAfter, Workers: int(c.WebhookWorkers), RetryWorkers: int(c.WebhookRetryWorkers), Sweep: c.WebhookSweep,
		Retention: c.WebhookRetention, SlowAfter: c.WebhookSlowAfter, Logger: logger}
}

// billing is the billing configuration: the catalog, Stripe's client and the webhook's settings.
func (c config) billing() (handlers.BillingConfig, error) {
	prices, checkout, err := billing.ParsePrices(c.StripePrices)
	if err != nil {
		return handlers.BillingConfig{}, fmt.Errorf("STRIPE_PRICES: %w", err)
	}
	ret, err := url.Parse(c.BillingReturnURL)
	if err != nil {
		return handlers.BillingConfig{}, fmt.Errorf("BILLING_RETURN_URL: %w", err)
	}
	with := func(v string) string {
		u := *ret
		q := u.Query()
		q.Set("checkout", v)
		u.RawQuery = q.Encode()
		return u.String()
	}
	bc := handlers.BillingConfig{
		Catalog: &billing.Catalog{
			Limits: map[billing.Plan]billing.Limits{
				billing.Free: billing.Limits(c.PlanLimitsFree), billing.Pro: billing.Limits(c.PlanLimitsPro),
				billing.Enterprise: billing.Limits(c.PlanLimitsEnterprise),
			},
			Prices: prices, Checkout: checkout, PastDueGrace: c.PastDueGrace,
		},
		WebhookSecrets: c.StripeWebhookSecrets, WebhookTolerance: c.StripeWebhookTol, WebhookMaxBytes: c.StripeWebhookMax,
		SuccessURL: with("success"), CancelURL: with("canceled"), ReturnURL: c.BillingReturnURL,
	}
	if c.StripeSecretKey != "" {
		bc.Stripe = stripeClient(c.StripeSecretKey, c.StripeAPIURL)
	}
	return bc, nil
}

// stripeClient talks to Stripe's API at base (https://api.stripe.com), retrying network errors
// twice as stripe-go does by default.
func stripeClient(key, base string) *stripe.Client {
	return stripe.NewClient(key, stripe.WithBackends(stripe.NewBackendsWithConfig(&stripe.BackendConfig{
		URL: stripe.String(base), MaxNetworkRetries: stripe.Int64(2),
		LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelError},
	})))
}

// realtime is the realtime service's configuration.
func (c config) realtime() realtime.Config {
	return realtime.Config{
		AllowedOrigins: c.RealtimeAllowedOrigins, MaxConnsPerUser: int(c.RealtimeMaxConnsPerUser),
		MaxSubscriptions: int(c.RealtimeMaxSubscriptions), MaxMessageBytes: c.RealtimeMaxMessageBytes,
		MessagesPerSecond: int(c.RealtimeMessagesPerSecond), SendQueue: int(c.RealtimeSendQueue),
		PingInterval: c.RealtimePingInterval, PingTimeout: c.RealtimePingTimeout,
		Retention: c.EventRetention, TokenTTL: c.AccessTTL,
	}
}

// origins are the exact origins (scheme://host[:port]) of CORS_ALLOWED_ORIGINS; none by default.
type origins []string

// redirectURIs are SSO_REDIRECT_URIS, checked by sso.ParseRedirectURIs.
type redirectURIs []string

// UnmarshalText checks each URI.
func (r *redirectURIs) UnmarshalText(text []byte) error {
	list, err := sso.ParseRedirectURIs(string(text))
	*r = list
	return err
}

// UnmarshalText checks each origin with middleware.ParseOrigins.
func (o *origins) UnmarshalText(text []byte) error {
	list, err := middleware.ParseOrigins(string(text))
	*o = list
	return err
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	levelType    = reflect.TypeFor[slog.Level]()
)

// loadConfig reads environ (the process environment in main, a map in tests). Every problem is
// reported at once, each naming its variable.
func loadConfig(environ map[string]string) (config, error) {
	c, err := env.ParseAsWithOptions[config](env.Options{Environment: environ})
	var errs []string
	failed := map[string]bool{}
	var agg env.AggregateError
	if errors.As(err, &agg) {
		for _, e := range agg.Errors {
			name, msg := explain(e, environ)
			failed[name] = true
			errs = append(errs, msg)
		}
	} else if err != nil {
		errs = append(errs, err.Error())
	}
	errs = append(errs, c.bound(failed)...)
	if c.RequestTimeout > 0 && c.WriteTimeout > 0 && c.WriteTimeout <= c.RequestTimeout {
		errs = append(errs, fmt.Sprintf("WRITE_TIMEOUT=%s: want more than REQUEST_TIMEOUT=%s, or a request that runs out of time gets no answer",
			c.WriteTimeout, c.RequestTimeout))
	}
	if c.EventRetention > 0 && c.EventRetention < max(time.Hour, c.AccessTTL+time.Minute) {
		errs = append(errs, fmt.Sprintf("EVENT_RETENTION=%s: want at least an hour and more than ACCESS_TOKEN_TTL=%s, "+
			"or an instance that starts would miss revocations of tokens still valid", c.EventRetention, c.AccessTTL))
	}
	switch {
	case c.FileStore != "dir" && c.FileStore != "s3":
		errs = append(errs, fmt.Sprintf("FILE_STORE=%s: want dir or s3", c.FileStore))
	case c.FileStore == "s3" && c.S3Bucket == "":
		errs = append(errs, "S3_BUCKET: required with FILE_STORE=s3")
	}
	if c.FileSweepGrace <= c.FileTransferTimeout {
		errs = append(errs, fmt.Sprintf("FILE_SWEEP_GRACE=%s: want more than FILE_TRANSFER_TIMEOUT=%s, or the sweep could take the blob of an upload still running",
			c.FileSweepGrace, c.FileTransferTimeout))
	}
	if _, err := c.sso(); err != nil {
		errs = append(errs, err.Error())
	}
	if _, _, err := billing.ParsePrices(c.StripePrices); err != nil {
		errs = append(errs, fmt.Sprintf("STRIPE_PRICES: %v", err))
	}
	for _, s := range c.StripeWebhookSecrets {
		if !strings.HasPrefix(s, "whsec_") {
			errs = append(errs, "STRIPE_WEBHOOK_SECRET: want whsec_ secrets, comma-separated")
			break
		}
	}
	if u, err := url.Parse(c.BillingReturnURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Sprintf("BILLING_RETURN_URL=%s: want an http(s) URL", c.BillingReturnURL))
	}
	if u, err := url.Parse(c.StripeAPIURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Sprintf("STRIPE_API_URL=%s: want an http(s) URL", c.StripeAPIURL))
	}
	if c.FileURLSecret != "" && len(c.FileURLSecret) < 32 {
		errs = append(errs, "FILE_URL_SECRET: want at least 32 bytes")
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			errs = append(errs, fmt.Sprintf("PUBLIC_URL=%s: want scheme://host[:port]", c.PublicURL))
		}
		c.PublicURL = strings.TrimSuffix(c.PublicURL, "/")
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("config: %s", strings.Join(errs, "; "))
	}
	return c, nil
}

// explain turns one of the env library's errors into a message that names the variable (its
// parse errors name the Go field) and says what it wants.
func explain(err error, environ map[string]string) (name, msg string) {
	var parse env.ParseError
	var notSet env.VarIsNotSetError
	var empty env.EmptyVarError
	var file env.LoadFileContentError
	switch {
	case errors.As(err, &parse):
		f, _ := reflect.TypeFor[config]().FieldByName(parse.Name)
		name = envName(f)
		value, ok := environ[name]
		if !ok {
			value = f.Tag.Get("envDefault")
		}
		switch {
		case f.Type == durationType:
			return name, fmt.Sprintf("%s=%q: want a duration such as 20s", name, value)
		case f.Type == levelType:
			return name, fmt.Sprintf("%s=%q: want debug, info, warn or error", name, value)
		case f.Type.Kind() == reflect.Int64:
			return name, fmt.Sprintf("%s=%q: want a positive integer", name, value)
		default:
			return name, fmt.Sprintf("%s: %v", name, parse.Err)
		}
	case errors.As(err, &notSet):
		return notSet.Key, notSet.Key + " is not set (see the configuration table in README.md; make run sets DATABASE_URL)"
	case errors.As(err, &empty):
		return empty.Key, empty.Key + " is empty"
	case errors.As(err, &file):
		return file.Key, fmt.Sprintf("%s: %v", file.Key, file.Err)
	}
	return "", err.Error()
}

// bound holds integers and durations to be positive and caps integers at their max tag. Fields
// that failed to parse (named in failed) are already reported.
func (c *config) bound(failed map[string]bool) []string {
	var errs []string
	for f, v := range reflect.ValueOf(c).Elem().Fields() {
		name := envName(f)
		if failed[name] {
			continue
		}
		switch {
		case f.Type == durationType:
			if v.Int() <= 0 {
				errs = append(errs, fmt.Sprintf("%s=%s: want a duration above zero such as 20s", name, time.Duration(v.Int())))
			}
		case f.Type.Kind() == reflect.Int64:
			if v.Int() <= 0 {
				errs = append(errs, fmt.Sprintf("%s=%d: want a positive integer", name, v.Int()))
			}
			if limit, ok := f.Tag.Lookup("max"); ok {
				n, err := strconv.ParseInt(limit, 10, 64)
				if err != nil {
					panic(fmt.Sprintf("config.%s: max tag %q: %v", f.Name, limit, err))
				}
				v.SetInt(min(v.Int(), n))
			}
		}
	}
	return errs
}

// envName is the variable a field reads.
func envName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
	return name
}

// LogValue lets the config be logged at start-up: each variable under its lower-case name, with
// the connection string's credentials removed and secrets only said to be set or not.
func (c config) LogValue() slog.Value {
	var attrs []slog.Attr
	for f, v := range reflect.ValueOf(c).Fields() {
		key := strings.ToLower(envName(f))
		switch fv := v.Interface(); f.Tag.Get("mask") {
		case "dsn":
			attrs = append(attrs, slog.String(key, maskURL(fv.(string))))
		case "secret":
			attrs = append(attrs, slog.Bool(key+"_set", !v.IsZero() && v.Len() > 0))
		default:
			if s, ok := fv.(fmt.Stringer); ok {
				attrs = append(attrs, slog.String(key, s.String()))
			} else {
				attrs = append(attrs, slog.Any(key, fv))
			}
		}
	}
	return slog.GroupValue(attrs...)
}

// maskURL names the database without any credential, whichever form (URL or key=value) the
// connection string takes.
func maskURL(raw string) string {
	cfg, err := pgconn.ParseConfig(raw)
	if err != nil {
		return "(unparseable)"
	}
	return fmt.Sprintf("host=%s port=%d dbname=%s user=%s", cfg.Host, cfg.Port, cfg.Database, cfg.User)
}

// signingKeysPEM is the key file's content if JWT_SIGNING_KEYS_FILE is set, else JWT_SIGNING_KEYS.
func (c config) signingKeysPEM() []byte {
	if c.SigningKeysFile != "" {
		return []byte(c.SigningKeysFile)
	}
	return []byte(c.SigningKeys)
}

// argon2 are the password hashing parameters; bound has capped each to fit its type.
func (c config) argon2() password.Params {
	return password.Params{Memory: uint32(c.Argon2MemoryKiB), Time: uint32(c.Argon2Time), Threads: uint8(c.Argon2Threads)}
}

// sessions are session lifetimes and login limits; password parameters travel separately (argon2).
func (c config) sessions() session.Config {
	return session.Config{
		Grace: c.RefreshGrace, MaxAge: c.SessionMaxAge, IdleTimeout: c.SessionIdleTimeout,
		LoginPerIP: int(c.LoginRatePerIP), LoginPerAccount: int(c.LoginRatePerAccount),
	}
}

// files opens the configured blob store and gathers the file endpoints' settings.
func (c config) files(ctx context.Context, keys *tokens.KeySet) (handlers.FilesConfig, error) {
	fc := handlers.FilesConfig{
		MaxBytes: c.FileMaxBytes, AllowedTypes: c.FileAllowedTypes,
		URLTTL: c.FileURLTTL, PublicURL: c.PublicURL,
		TransferTimeout: c.FileTransferTimeout, IdleTimeout: c.FileIdleTimeout, MaxUploadsPerTenant: int(c.FileMaxUploads),
	}
	if len(fc.AllowedTypes) == 0 {
		fc.AllowedTypes = files.DefaultAllowedTypes
	}
	secret := []byte(c.FileURLSecret)
	if len(secret) == 0 {
		var err error
		if secret, err = keys.DeriveSecret("file urls"); err != nil {
			return fc, fmt.Errorf("file url key: %w", err)
		}
	}
	fc.Signer = files.NewSigner(secret)
	var err error
	switch c.FileStore {
	case "s3":
		fc.Store, err = blob.NewS3(ctx, blob.S3Config{
			Endpoint: c.S3Endpoint, Region: c.S3Region, Bucket: c.S3Bucket, PathStyle: c.S3PathStyle,
			AccessKeyID: c.S3AccessKeyID, SecretAccessKey: c.S3SecretAccessKey,
		})
	default:
		fc.Store, err = blob.NewDir(c.FileDir)
	}
	if err != nil {
		return fc, fmt.Errorf("file store: %w", err)
	}
	return fc, nil
}
