package identity

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Caller is who a request was authenticated as.
type Caller struct {
	// Name is what logs and run records show: "principal NAME (CLIENT_ID)"
	// or "static token N".
	Name     string
	ClientID string // empty for a static token
	// Subscriptions the caller may use; nil means every one (static tokens).
	Subscriptions []string
}

// CanUse tells whether the caller may act in subscription sub.
func (c Caller) CanUse(sub string) bool {
	return c.Subscriptions == nil || slices.ContainsFunc(c.Subscriptions, func(s string) bool { return strings.EqualFold(s, sub) })
}

// Errors of Authenticate and Issue, for errors.Is.
var (
	ErrInvalidToken = errors.New("the access token is invalid")
	ErrExpiredToken = errors.New("the access token has expired")
	ErrRateLimited  = errors.New("too many token requests")
)

// Options configure an Authority.
type Options struct {
	Directory *Directory
	// KeyFile holds the token signing key; made at first use.
	KeyFile string
	// Key, when set, is the signing key instead of KeyFile's (API replicas
	// on one database share it, so each accepts the others' tokens).
	Key []byte
	// StaticTokens are accepted as they are (the configuration's tokens).
	StaticTokens []string
	// Tenant is the tenant id tokens name; default DefaultTenant.
	Tenant string
	// TokenTTL is how long an issued token is valid; default 1 hour (the
	// Azure CLI fetches a new token for every call when one has under 5
	// minutes left).
	TokenTTL time.Duration
	// Rate and Burst limit token requests per client id: Burst at once,
	// then one every Rate. Defaults: 10, one every 6 s.
	Rate  time.Duration
	Burst int
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Authority issues and checks access tokens.
type Authority struct {
	dir     *Directory
	key     []byte
	static  [][]byte
	tenant  string
	ttl     time.Duration
	now     func() time.Time
	limiter *limiter
}

// NewAuthority makes an Authority, reading (or making) its signing key.
func NewAuthority(o Options) (*Authority, error) {
	if o.Directory == nil {
		return nil, errors.New("identity: a Directory is required")
	}
	a := &Authority{dir: o.Directory, tenant: o.Tenant, ttl: o.TokenTTL, now: o.Now}
	if a.tenant == "" {
		a.tenant = DefaultTenant
	}
	if a.ttl <= 0 {
		a.ttl = time.Hour
	}
	if a.now == nil {
		a.now = time.Now
	}
	for _, t := range o.StaticTokens {
		if t = strings.TrimSpace(t); t != "" {
			a.static = append(a.static, []byte(t))
		}
	}
	if o.Rate <= 0 {
		o.Rate = 6 * time.Second
	}
	if o.Burst <= 0 {
		o.Burst = 10
	}
	a.limiter = &limiter{rate: o.Rate, burst: float64(o.Burst), buckets: map[string]*bucket{}}
	if len(o.Key) > 0 {
		if len(o.Key) < 32 {
			return nil, fmt.Errorf("identity: signing key of %d bytes, want at least 32", len(o.Key))
		}
		a.key = append([]byte(nil), o.Key...)
		return a, nil
	}
	var err error
	if a.key, err = signingKey(o.KeyFile); err != nil {
		return nil, err
	}
	return a, nil
}

// Tenant is the tenant id tokens are issued in.
func (a *Authority) Tenant() string { return a.tenant }

// Directory is where the principals are kept.
func (a *Authority) Directory() *Directory { return a.dir }

// signingKey reads the key in file, making it (256 random bits) at first use.
func signingKey(file string) ([]byte, error) {
	if file == "" {
		return nil, errors.New("identity: a signing key file is required")
	}
	data, err := os.ReadFile(file)
	if err == nil {
		key, err := hex.DecodeString(strings.TrimSpace(string(data)))
		if err != nil || len(key) < 32 {
			return nil, fmt.Errorf("token signing key %s: not 32 hex-encoded bytes", file)
		}
		return key, nil
	}
	if !os.IsNotExist(err) {
		return nil, fmt.Errorf("read token signing key: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return nil, fmt.Errorf("token signing key: %w", err)
	}
	// O_EXCL: two processes starting at once keep the same key.
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return signingKey(file)
	}
	if err != nil {
		return nil, fmt.Errorf("write token signing key: %w", err)
	}
	_, err = f.WriteString(hex.EncodeToString(key) + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("write token signing key: %w", err)
	}
	return key, nil
}

// claims are the token's payload: the names Azure AD uses.
type claims struct {
	Issuer    string `json:"iss"`
	Audience  string `json:"aud"`
	Subject   string `json:"sub"`
	AppID     string `json:"appid"`
	ObjectID  string `json:"oid"`
	Tenant    string `json:"tid"`
	Name      string `json:"name,omitempty"`
	IssuedAt  int64  `json:"iat"`
	NotBefore int64  `json:"nbf"`
	Expires   int64  `json:"exp"`
	ID        string `json:"jti"`
}

const tokenIssuer = "goldsmith"

var jwtHeader = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))

// Token is an issued access token.
type Token struct {
	AccessToken string
	ExpiresIn   time.Duration
	Principal   Principal
}

// Issue checks a client's credentials and issues a token for audience.
// Requests are limited per client id (ErrRateLimited, with how long to
// wait), before the secret is checked, so guessing is slow too.
func (a *Authority) Issue(ctx context.Context, clientID, secret, audience string) (Token, time.Duration, error) {
	if wait := a.limiter.take(strings.ToLower(clientID), a.now()); wait > 0 {
		return Token{}, wait, fmt.Errorf("client %s: %w", clientID, ErrRateLimited)
	}
	p, err := a.dir.Verify(ctx, clientID, secret)
	if err != nil {
		return Token{}, 0, err
	}
	now := a.now()
	c := claims{Issuer: tokenIssuer, Audience: audience, Subject: p.ClientID, AppID: p.ClientID, ObjectID: p.ClientID,
		Tenant: a.tenant, Name: p.Name, IssuedAt: now.Unix(), NotBefore: now.Add(-5 * time.Minute).Unix(),
		Expires: now.Add(a.ttl).Unix(), ID: newGUID()}
	return Token{AccessToken: a.sign(c), ExpiresIn: a.ttl, Principal: p}, 0, nil
}

func (a *Authority) sign(c claims) string {
	payload, _ := json.Marshal(c)
	signing := jwtHeader + "." + base64.RawURLEncoding.EncodeToString(payload)
	return signing + "." + base64.RawURLEncoding.EncodeToString(a.mac(signing))
}

func (a *Authority) mac(s string) []byte {
	m := hmac.New(sha256.New, a.key)
	m.Write([]byte(s))
	return m.Sum(nil)
}

// Authenticate checks a bearer token: a static token, or a token this
// authority signed, unexpired, whose principal still exists.
func (a *Authority) Authenticate(ctx context.Context, token string) (Caller, error) {
	tok := []byte(strings.TrimSpace(token))
	for i, t := range a.static {
		if subtle.ConstantTimeCompare(t, tok) == 1 {
			return Caller{Name: fmt.Sprintf("static token %d", i+1)}, nil
		}
	}
	parts := strings.Split(string(tok), ".")
	if len(parts) != 3 || parts[0] != jwtHeader {
		return Caller{}, ErrInvalidToken
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || !hmac.Equal(sig, a.mac(parts[0]+"."+parts[1])) {
		return Caller{}, ErrInvalidToken
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return Caller{}, ErrInvalidToken
	}
	var c claims
	if err := json.Unmarshal(payload, &c); err != nil || c.Issuer != tokenIssuer {
		return Caller{}, ErrInvalidToken
	}
	now := a.now().Unix()
	if now >= c.Expires {
		return Caller{}, ErrExpiredToken
	}
	if now < c.NotBefore {
		return Caller{}, ErrInvalidToken
	}
	p, err := a.dir.Get(ctx, c.Subject)
	if errors.Is(err, ErrUnknownClient) {
		return Caller{}, fmt.Errorf("%w: its service principal %s no longer exists", ErrInvalidToken, c.Subject)
	}
	if err != nil {
		return Caller{}, err
	}
	return Caller{Name: "principal " + p.Name + " (" + p.ClientID + ")", ClientID: p.ClientID, Subscriptions: p.Subscriptions}, nil
}

// limiter is a token bucket per client id.
type limiter struct {
	mu      sync.Mutex
	rate    time.Duration
	burst   float64
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// maxBuckets bounds the limiter's memory against requests with ever new
// client ids; full buckets carry no state and are dropped first.
const maxBuckets = 10000

// take spends one request of key's bucket; it returns how long to wait
// when there is none.
func (l *limiter) take(key string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			l.prune(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	b.tokens = min(l.burst, b.tokens+float64(now.Sub(b.last))/float64(l.rate))
	b.last = now
	if b.tokens < 1 {
		return time.Duration((1 - b.tokens) * float64(l.rate))
	}
	b.tokens--
	return 0
}

func (l *limiter) prune(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+float64(now.Sub(b.last))/float64(l.rate) >= l.burst {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) >= maxBuckets {
		clear(l.buckets)
	}
}
