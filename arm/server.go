// Package arm serves goldsmith's Azure Resource Manager compatible HTTP API:
// Microsoft.VirtualMachineImages imageTemplates exactly as AIB answers them
// (per api-version: shapes, enum casing, error envelope, long-running
// operation headers), the resources a user needs around them (resource
// groups, Microsoft.Compute images, galleries, gallery image definitions and
// versions, Microsoft.ManagedIdentity userAssignedIdentities), operation
// status resources, paging with absolute nextLinks, the subscription-level
// endpoints clients ask first (subscriptions, tenants, locations, providers),
// and bearer-token auth with an ADFS-style token endpoint for service
// principals (signin.go; package identity owns principals and tokens).
// Official Azure SDKs and the Azure CLI work against it unchanged.
//
// Beyond ARM, goldsmith's own endpoints live under /goldsmith/v1 (see
// logs.go): run records, the customization log (live with follow=true) and
// artifact downloads.
package arm

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/goldsmith-dev/goldsmith/identity"
	"github.com/goldsmith-dev/goldsmith/internal/httpstream"
	"github.com/goldsmith-dev/goldsmith/resource"
	"github.com/goldsmith-dev/goldsmith/resourceid"
	"github.com/goldsmith-dev/goldsmith/template"
)

// Options configure a Server.
type Options struct {
	Service *resource.Service
	// Auth checks bearer tokens (static ones and those its token endpoint,
	// /adfs/oauth2/token, issues to service principals).
	Auth   *identity.Authority
	Logger *slog.Logger
	// PageSize is how many resources a list answers per page; default 100.
	PageSize int
	// RetryAfter is what long-running operations ask clients to wait
	// between polls; default 2s.
	RetryAfter time.Duration
	// BaseURL, when set, is used for absolute URLs (Azure-AsyncOperation,
	// Location, nextLink, artifact links) instead of the request's host.
	BaseURL string
	// MaxBodyBytes limits request bodies; default 16 MiB.
	MaxBodyBytes int64
	// BlobURLTTL is how long a signed download URL (a VHD runOutput's
	// artifactUri) stays valid; default 24 hours. Every read of the
	// runOutput hands out a fresh one.
	BlobURLTTL time.Duration
}

// Server is the HTTP API.
type Server struct {
	svc        *resource.Service
	auth       *identity.Authority
	log        *slog.Logger
	pageSize   int
	retryAfter int
	baseURL    string
	maxBody    int64
	blobTTL    time.Duration
}

// New makes a Server.
func New(opts Options) (*Server, error) {
	if opts.Service == nil {
		return nil, errors.New("arm: a Service is required")
	}
	if opts.Auth == nil {
		return nil, errors.New("arm: an Authority is required")
	}
	s := &Server{svc: opts.Service, auth: opts.Auth, log: opts.Logger, pageSize: opts.PageSize, baseURL: strings.TrimSuffix(opts.BaseURL, "/"), maxBody: opts.MaxBodyBytes}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.pageSize <= 0 {
		s.pageSize = 100
	}
	s.retryAfter = int(opts.RetryAfter / time.Second)
	if s.retryAfter <= 0 {
		s.retryAfter = 2
	}
	if s.maxBody <= 0 {
		s.maxBody = 16 << 20
	}
	if s.blobTTL = opts.BlobURLTTL; s.blobTTL <= 0 {
		s.blobTTL = 24 * time.Hour
	}
	return s, nil
}

// request is one request on its way through the server.
type request struct {
	w       http.ResponseWriter
	r       *http.Request
	ctx     context.Context
	base    string // scheme://host, no trailing slash
	version string // the api-version asked for
	caller  identity.Caller
	aib     template.APIVersion
	env     envelope
}

// newGUID is a random (version 4) GUID, as ARM's ids and request ids are.
func newGUID() string { return uuid.NewString() }

// ServeHTTP answers one request.
func (s *Server) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	start := time.Now()
	w := &httpstream.StatusWriter{ResponseWriter: rw}
	rid := newGUID()
	w.Header().Set("x-ms-request-id", rid)
	corr := r.Header.Get("x-ms-correlation-request-id")
	if corr == "" {
		corr = rid
	}
	w.Header().Set("x-ms-correlation-request-id", corr)
	if cid := r.Header.Get("x-ms-client-request-id"); cid != "" {
		w.Header().Set("x-ms-client-request-id", cid)
	}
	who := "-"
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("panic serving request", "method", r.Method, "path", r.URL.Path, "panic", p, "request_id", rid)
			if w.Status == 0 {
				writeError(w, errorf(resource.KindInternal, "InternalServerError", "goldsmith failed to answer this request (request id %s).", rid), wrapped)
			}
		}
		s.log.Info("request", "method", r.Method, "path", r.URL.Path, "api_version", r.URL.Query().Get("api-version"),
			"status", w.Status, "duration", time.Since(start).Round(time.Millisecond), "principal", who, "request_id", rid)
	}()
	if s.signedBlob(w, r) {
		return
	}
	segs, err := splitPath(r.URL)
	if err != nil {
		writeError(w, errorf(resource.KindBadRequest, "InvalidRequestUri", "The request path is not valid: %v", err), wrapped)
		return
	}
	rq := &request{w: w, r: r, ctx: r.Context(), base: s.base(r), version: r.URL.Query().Get("api-version")}
	// The sign-in endpoints come before authentication: they hand out tokens.
	if s.signIn(rq, segs) {
		return
	}
	caller, err := s.authenticate(r)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="goldsmith", error="invalid_token"`)
		e := resource.AsError(err)
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set("x-ms-error-code", e.Code)
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write(encodeError(e, wrapped))
		return
	}
	who = caller.Name
	rq.caller = caller
	rq.ctx = resource.WithActor(rq.ctx, caller.Name)
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, s.maxBody)
	}
	s.route(rq, segs)
}

func (s *Server) authenticate(r *http.Request) (identity.Caller, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return identity.Caller{}, errorf(resource.KindBadRequest, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")
	}
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return identity.Caller{}, errorf(resource.KindBadRequest, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is not a Bearer token.")
	}
	c, err := s.auth.Authenticate(r.Context(), token)
	switch {
	case err == nil:
		return c, nil
	case errors.Is(err, identity.ErrExpiredToken):
		return c, errorf(resource.KindBadRequest, "ExpiredAuthenticationToken", "The access token has expired. Get a new one from the token endpoint (az login).")
	case errors.Is(err, identity.ErrInvalidToken):
		return c, errorf(resource.KindBadRequest, "InvalidAuthenticationToken", "The access token is invalid: %v.", err)
	}
	s.log.Error("authenticate", "err", err)
	return c, errorf(resource.KindBadRequest, "AuthenticationFailed", "Authentication failed: the token could not be checked.")
}

func (s *Server) base(r *http.Request) string {
	if s.baseURL != "" {
		return s.baseURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// canonical spellings of the fixed path segments.
var canonical = map[string]string{
	"microsoft.virtualmachineimages": "Microsoft.VirtualMachineImages",
	"microsoft.compute":              "Microsoft.Compute",
	"microsoft.managedidentity":      "Microsoft.ManagedIdentity",
	"microsoft.resources":            "Microsoft.Resources",
	"imagetemplates":                 "imageTemplates",
	"runoutputs":                     "runOutputs",
	"triggers":                       "triggers",
	"run":                            "run",
	"cancel":                         "cancel",
	"images":                         "images",
	"galleries":                      "galleries",
	"versions":                       "versions",
	"userassignedidentities":         "userAssignedIdentities",
	"locations":                      "locations",
	"operations":                     "operations",
	"operationresults":               "operationresults",
}

// armPath is an ARM request path taken apart.
type armPath struct {
	sub, group string
	ns         string   // canonical namespace
	types      []string // canonical type segments, the last one possibly a collection or action
	names      []string // one per type segment, except a trailing collection/action
}

// key is the case-folded namespace/types, e.g. microsoft.compute/galleries/images.
func (p armPath) key() string {
	return strings.ToLower(p.ns + "/" + strings.Join(p.types, "/"))
}

// item tells whether the path names one resource (not a collection or action).
func (p armPath) item() bool { return len(p.names) == len(p.types) }

// id is the resource id of an item path (or of a collection's parent).
func (p armPath) id() resourceid.ID {
	n := len(p.names)
	return resourceid.ID{Subscription: p.sub, ResourceGroup: p.group, Namespace: p.ns, Types: p.types[:n], Names: p.names}
}

// scope is the id a collection lists under: its parent resource, or the
// resource group, or the subscription.
func (p armPath) scope() string {
	if len(p.names) > 0 {
		return p.id().String()
	}
	if p.group != "" {
		return "/subscriptions/" + p.sub + "/resourceGroups/" + p.group
	}
	return "/subscriptions/" + p.sub
}

// splitPath splits a request path into its unescaped segments. Empty
// segments are dropped: the Azure CLI's `az resource` sends
// .../providers/Microsoft.VirtualMachineImages//imageTemplates/N.
func splitPath(u *url.URL) ([]string, error) {
	var parts []string
	for _, p := range strings.Split(u.EscapedPath(), "/") {
		if p == "" {
			continue
		}
		s, err := url.PathUnescape(p)
		if err != nil {
			return nil, err
		}
		parts = append(parts, s)
	}
	return parts, nil
}

func canon(seg string) string {
	if c, ok := canonical[strings.ToLower(seg)]; ok {
		return c
	}
	return seg
}

func (s *Server) route(rq *request, segs []string) {
	eq := strings.EqualFold
	if !s.authorized(rq, segs) {
		return
	}
	switch {
	case len(segs) >= 2 && eq(segs[0], "goldsmith") && eq(segs[1], "v1"):
		s.goldsmith(rq, segs[2:])
		return
	case len(segs) == 3 && eq(segs[0], "providers") && eq(segs[1], "Microsoft.VirtualMachineImages") && eq(segs[2], "operations"):
		s.providerOperations(rq)
		return
	case len(segs) == 1 && eq(segs[0], "tenants"):
		s.tenants(rq)
		return
	case len(segs) >= 1 && len(segs) <= 2 && eq(segs[0], "subscriptions"):
		s.subscriptions(rq, segs[1:])
		return
	case len(segs) < 2 || !eq(segs[0], "subscriptions"):
		s.noRoute(rq)
		return
	}
	p := armPath{sub: segs[1]}
	rest := segs[2:]
	if len(rest) == 1 && eq(rest[0], "locations") {
		s.locations(rq, p.sub)
		return
	}
	if len(rest) >= 1 && len(rest) <= 3 && eq(rest[0], "providers") && (len(rest) < 3 || eq(rest[2], "register")) {
		s.providers(rq, p.sub, rest[1:])
		return
	}
	if len(rest) > 0 && eq(rest[0], "resourceGroups") {
		if len(rest) == 1 {
			s.groups(rq, p, false)
			return
		}
		p.group = rest[1]
		rest = rest[2:]
		if len(rest) == 0 {
			s.groups(rq, p, true)
			return
		}
	}
	if len(rest) < 3 || !eq(rest[0], "providers") {
		s.noRoute(rq)
		return
	}
	p.ns = canon(rest[1])
	for i, seg := range rest[2:] {
		if i%2 == 0 {
			p.types = append(p.types, canon(seg))
		} else {
			p.names = append(p.names, seg)
		}
	}
	switch p.key() {
	case "microsoft.virtualmachineimages/imagetemplates",
		"microsoft.virtualmachineimages/imagetemplates/run",
		"microsoft.virtualmachineimages/imagetemplates/cancel",
		"microsoft.virtualmachineimages/imagetemplates/runoutputs",
		"microsoft.virtualmachineimages/imagetemplates/triggers":
		s.imageTemplates(rq, p)
	case "microsoft.virtualmachineimages/locations/operations":
		s.operationStatus(rq, p)
	case "microsoft.virtualmachineimages/locations/operationresults",
		"microsoft.resources/locations/operationresults":
		s.operationResult(rq, p)
	case "microsoft.compute/images":
		s.plain(rq, p, famComputeImages)
	case "microsoft.compute/galleries", "microsoft.compute/galleries/images", "microsoft.compute/galleries/images/versions":
		s.plain(rq, p, famGalleries)
	case "microsoft.managedidentity/userassignedidentities":
		s.plain(rq, p, famIdentity)
	default:
		s.noRoute(rq)
	}
}

func (s *Server) noRoute(rq *request) {
	writeError(rq.w, errorf(resource.KindNotFound, "InvalidResourceType",
		"The resource type or path '%s' is not served by goldsmith.", rq.r.URL.Path), wrapped)
}

func methodNotAllowed(rq *request) {
	writeError(rq.w, errorf(resource.KindNotAllowed, "MethodNotAllowed",
		"The requested resource does not support http method '%s'.", rq.r.Method), rq.env)
}

// writeJSON answers status with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = jsonEncoder(w).Encode(v)
}
