package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/goldsmith-dev/goldsmith/arm"
	"github.com/goldsmith-dev/goldsmith/blob"
	"github.com/goldsmith-dev/goldsmith/server"
	"github.com/goldsmith-dev/goldsmith/template"
)

type serveFlags struct {
	listen     string
	dataDir    string
	workers    int
	tlsCert    string
	tlsKey     string
	selfSigned bool
	config     string
	logLevel   string
	accel      string
}

// serveConfig is the optional config file (default DATA_DIR/config.json).
type serveConfig struct {
	// Tokens are accepted bearer tokens (GOLDSMITH_TOKEN adds more).
	Tokens []string `json:"tokens"`
	// Regions served, each with its blob root (default DATA_DIR/regions/NAME);
	// none: blob.DefaultRegionNames.
	Regions []blob.Region `json:"regions"`
}

// serveRegions opens the configured regions' blob stores.
func serveRegions(dir, configPath string) (*blob.Regions, error) {
	if configPath == "" {
		configPath = filepath.Join(dir, "config.json")
	}
	var c serveConfig
	if data, err := os.ReadFile(configPath); err == nil {
		if err := json.Unmarshal(data, &c); err != nil {
			return nil, fmt.Errorf("read config %s: %w", configPath, err)
		}
	}
	return blob.OpenRegions(filepath.Join(dir, "regions"), c.Regions)
}

func newServeCommand() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the AIB-compatible ARM API and run builds",
		Long: `Serve answers Azure VM Image Builder's ARM REST API (imageTemplates at every
api-version, with resource groups, Microsoft.Compute images, galleries, image
definitions and versions, and user-assigned identities around them), keeps its
state in SQLite under --data-dir and runs builds with --workers in-process
workers. Official Azure SDKs and the az CLI work against it when pointed at
its URL.

Every request needs "Authorization: Bearer TOKEN". Accepted tokens come from
GOLDSMITH_TOKEN (comma separated) and the config file's "tokens"; when none is
configured, one is generated at first start, printed, and kept in
DATA_DIR/token.

After a crash (even kill -9) the next start reports runs that were in
progress as Failed with a message saying they were interrupted, stops the
processes they left and removes their scratch files.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServe(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", "127.0.0.1:8080", "address to listen on")
	fl.StringVar(&f.dataDir, "data-dir", defaultDataDir(), "directory for state, staging groups, logs and artifacts")
	fl.IntVar(&f.workers, "workers", 1, "builds run at the same time")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "serve HTTPS with this certificate (PEM)")
	fl.StringVar(&f.tlsKey, "tls-key", "", "the private key of --tls-cert (PEM)")
	fl.BoolVar(&f.selfSigned, "tls-self-signed", false, "serve HTTPS with a self-signed certificate kept in DATA_DIR/tls (for local use)")
	fl.StringVar(&f.config, "config", "", "config file (default DATA_DIR/config.json)")
	fl.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fl.StringVar(&f.accel, "accel", "", "force the build VMs' accelerator: kvm or tcg (default: probe)")
	return cmd
}

func runServe(ctx context.Context, stdout, stderr io.Writer, f serveFlags) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return usageError("--log-level: %v", err)
	}
	if f.workers < 1 {
		return usageError("--workers must be at least 1")
	}
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return usageError("--tls-cert and --tls-key go together")
	}
	if f.selfSigned && f.tlsCert != "" {
		return usageError("--tls-self-signed and --tls-cert exclude each other")
	}
	if f.accel != "" && f.accel != "kvm" && f.accel != "tcg" {
		return usageError("--accel must be kvm or tcg, not %q", f.accel)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	dir, err := filepath.Abs(f.dataDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	regions, err := serveRegions(dir, f.config)
	if err != nil {
		return err
	}
	builder, platform, err := newBuilder(dir, log.With("component", "build"), f.accel)
	if err != nil {
		return err
	}
	srv, err := server.Open(ctx, server.Config{DataDir: dir, Workers: f.workers, Builder: builder, Platform: platform,
		Regions: regions, Logger: log})
	if err != nil {
		return err
	}
	defer srv.Close()
	tokens, err := serveTokens(dir, f.config, stdout)
	if err != nil {
		return err
	}
	api, err := arm.New(arm.Options{Service: srv.Service(), Tokens: tokens, Logger: log.With("component", "api")})
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", f.listen, err)
	}
	scheme := "http"
	if f.selfSigned {
		if f.tlsCert, f.tlsKey, err = selfSignedCert(filepath.Join(dir, "tls"), stdout); err != nil {
			return err
		}
	}
	hs := &http.Server{Handler: api, ReadHeaderTimeout: 30 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
	if f.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
		if err != nil {
			ln.Close()
			return fmt.Errorf("load TLS certificate: %w", err)
		}
		hs.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, hs.TLSConfig)
		scheme = "https"
	}

	qctx, stopQueue := context.WithCancel(context.WithoutCancel(ctx))
	queueDone := make(chan error, 1)
	go func() { queueDone <- srv.Run(qctx) }()
	serveDone := make(chan error, 1)
	go func() { serveDone <- hs.Serve(ln) }()
	fmt.Fprintf(stdout, "goldsmith serving %s://%s (data %s, %d workers)\n", scheme, ln.Addr(), dir, f.workers)

	select {
	case <-ctx.Done():
	case err = <-serveDone:
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_ = hs.Shutdown(sctx)
	stopQueue() // running builds stop; they are reported as interrupted
	if qerr := <-queueDone; qerr != nil && err == nil {
		err = qerr
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// serveTokens gathers the accepted tokens: GOLDSMITH_TOKEN, the config file,
// else the generated DATA_DIR/token (made and printed at first start).
func serveTokens(dir, configPath string, out io.Writer) ([]string, error) {
	var tokens []string
	for _, t := range strings.Split(os.Getenv("GOLDSMITH_TOKEN"), ",") {
		if t = strings.TrimSpace(t); t != "" {
			tokens = append(tokens, t)
		}
	}
	explicit := configPath != ""
	if configPath == "" {
		configPath = filepath.Join(dir, "config.json")
	}
	data, err := os.ReadFile(configPath)
	switch {
	case err == nil:
		var c serveConfig
		if err := json.Unmarshal(data, &c); err != nil {
			return nil, fmt.Errorf("read config %s: %w", configPath, err)
		}
		for _, t := range c.Tokens {
			if t = strings.TrimSpace(t); t != "" {
				tokens = append(tokens, t)
			}
		}
	case !os.IsNotExist(err) || explicit:
		return nil, fmt.Errorf("read config: %w", err)
	}
	if len(tokens) > 0 {
		return tokens, nil
	}
	tokenFile := filepath.Join(dir, "token")
	if data, err := os.ReadFile(tokenFile); err == nil && strings.TrimSpace(string(data)) != "" {
		fmt.Fprintf(out, "Using the API token in %s\n", tokenFile)
		return []string{strings.TrimSpace(string(data))}, nil
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	tok := hex.EncodeToString(b)
	if err := os.WriteFile(tokenFile, []byte(tok+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("save the generated token: %w", err)
	}
	fmt.Fprintf(out, "Generated an API token (kept in %s):\n\n    export GOLDSMITH_TOKEN=%s\n\n", tokenFile, tok)
	return []string{tok}, nil
}

// selfSignedCert returns (making at first use) a self-signed certificate
// for localhost and 127.0.0.1, and prints its fingerprint.
func selfSignedCert(dir string, out io.Writer) (certFile, keyFile string, err error) {
	certFile, keyFile = filepath.Join(dir, "self-signed.crt"), filepath.Join(dir, "self-signed.key")
	if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", "", err
		}
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return "", "", err
		}
		serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
		host, _ := os.Hostname()
		tmpl := &x509.Certificate{
			SerialNumber: serial,
			Subject:      pkix.Name{CommonName: "goldsmith (self-signed)"},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().AddDate(2, 0, 0),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			DNSNames:     []string{"localhost", host},
			IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			return "", "", err
		}
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return "", "", err
		}
		if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
			return "", "", err
		}
		if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
			return "", "", err
		}
	}
	pemData, err := os.ReadFile(certFile)
	if err != nil {
		return "", "", err
	}
	if blk, _ := pem.Decode(pemData); blk != nil {
		sum := sha256.Sum256(blk.Bytes)
		fmt.Fprintf(out, "TLS: self-signed certificate %s, SHA-256 fingerprint %s\n", certFile, hex.EncodeToString(sum[:]))
	}
	return certFile, keyFile, nil
}

// ---- Client commands: talk to a goldsmith server (--server, GOLDSMITH_TOKEN).

// clientFlags are the flags every client command has.
type clientFlags struct {
	server       string
	subscription string
	output       string
	insecure     bool
	group        string
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// addClientFlags adds the shared flags; withGroup adds -g/--resource-group.
func addClientFlags(cmd *cobra.Command, f *clientFlags, withGroup bool) {
	fl := cmd.Flags()
	fl.StringVar(&f.server, "server", envOr("GOLDSMITH_SERVER", "http://127.0.0.1:8080"), "goldsmith server URL (env GOLDSMITH_SERVER)")
	fl.StringVar(&f.subscription, "subscription", envOr("GOLDSMITH_SUBSCRIPTION", template.DefaultSubscriptionID), "subscription id (env GOLDSMITH_SUBSCRIPTION)")
	fl.StringVarP(&f.output, "output", "o", "table", "output format: table or json")
	fl.BoolVar(&f.insecure, "insecure", false, "do not verify the server's TLS certificate (for --tls-self-signed servers)")
	if withGroup {
		fl.StringVarP(&f.group, "resource-group", "g", os.Getenv("GOLDSMITH_RESOURCE_GROUP"), "resource group (env GOLDSMITH_RESOURCE_GROUP)")
	}
}

func (f *clientFlags) client(needGroup bool) (*arm.Client, error) {
	if f.output != "table" && f.output != "json" {
		return nil, usageError("--output must be table or json, not %q", f.output)
	}
	if needGroup && f.group == "" {
		return nil, usageError("--resource-group (-g) is required")
	}
	token, _, _ := strings.Cut(os.Getenv("GOLDSMITH_TOKEN"), ",")
	if strings.TrimSpace(token) == "" {
		return nil, usageError("set GOLDSMITH_TOKEN to the server's API token (goldsmith serve prints it at first start and keeps it in DATA_DIR/token)")
	}
	hc := &http.Client{Timeout: 0}
	if f.insecure {
		hc.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // asked for by --insecure
	}
	return &arm.Client{BaseURL: strings.TrimSuffix(f.server, "/"), Token: strings.TrimSpace(token), Subscription: f.subscription, HTTP: hc}, nil
}

// clientFailure maps an API error to exit status 1 with its message.
func clientFailure(err error) error {
	if err == nil {
		return nil
	}
	var ae *arm.APIError
	if errors.As(err, &ae) {
		return &exitError{code: exitFailure, err: ae}
	}
	return &exitError{code: exitFailure, err: err}
}

func printJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// field digs a string out of a decoded resource.
func field(m map[string]any, keys ...string) string {
	var v any = m
	for _, k := range keys {
		mm, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = mm[k]
	}
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return ""
	default:
		return fmt.Sprint(x)
	}
}

func groupOf(id string) string {
	parts := strings.Split(id, "/")
	for i := 0; i+1 < len(parts); i++ {
		if strings.EqualFold(parts[i], "resourceGroups") {
			return parts[i+1]
		}
	}
	return ""
}

func printTable(out io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

func templateRow(t map[string]any) []string {
	msg := field(t, "properties", "lastRunStatus", "message")
	if e := field(t, "properties", "provisioningError", "message"); e != "" {
		msg = e
	}
	if len(msg) > 80 {
		msg = msg[:77] + "..."
	}
	return []string{field(t, "name"), groupOf(field(t, "id")), field(t, "properties", "provisioningState"),
		field(t, "properties", "lastRunStatus", "runState"), field(t, "properties", "lastRunStatus", "runSubState"), msg}
}

var templateHeader = []string{"NAME", "RESOURCE GROUP", "PROVISIONING", "LAST RUN", "PHASE", "MESSAGE"}

func printTemplates(out io.Writer, format string, ts ...map[string]any) error {
	if format == "json" {
		if len(ts) == 1 {
			return printJSON(out, ts[0])
		}
		return printJSON(out, ts)
	}
	rows := make([][]string, len(ts))
	for i, t := range ts {
		rows[i] = templateRow(t)
	}
	return printTable(out, templateHeader, rows)
}

// newGroupCommand is `goldsmith group create NAME --location L`.
func newGroupCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "group", Short: "Manage resource groups on a goldsmith server"}
	var f clientFlags
	var location string
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create (or update) a resource group",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(false)
			if err != nil {
				return err
			}
			g, err := c.PutGroup(cmd.Context(), args[0], location)
			if err != nil {
				return clientFailure(err)
			}
			if f.output == "json" {
				return printJSON(cmd.OutOrStdout(), g)
			}
			return printTable(cmd.OutOrStdout(), []string{"NAME", "LOCATION", "STATE"},
				[][]string{{field(g, "name"), field(g, "location"), field(g, "properties", "provisioningState")}})
		},
	}
	addClientFlags(create, &f, false)
	create.Flags().StringVarP(&location, "location", "l", template.DefaultLocation, "region")
	cmd.AddCommand(create)
	return cmd
}

// templateDocs turns a template file into (name, apiVersion, body) to PUT:
// an image template resource, a bare properties object, or an ARM
// deployment template (evaluated with parameters).
type templateDoc struct {
	name, apiVersion string
	body             map[string]any
}

// templateDocs finds the image templates a file holds (template.Documents)
// and names each as the server will know it.
func templateDocs(data []byte, params map[string]any, sub, group, location, name, apiVersion string) ([]templateDoc, error) {
	docs, err := template.Documents(data, template.LoadOptions{Parameters: params, SubscriptionID: sub, ResourceGroup: group, Location: location})
	if err != nil {
		return nil, err
	}
	pick := func(def, flag string) string {
		if flag != "" {
			return flag
		}
		return def
	}
	out := make([]templateDoc, 0, len(docs))
	for _, d := range docs {
		switch d.Form {
		case template.FormDeployment:
			n := d.Name[strings.LastIndex(d.Name, "/")+1:]
			if name != "" && len(docs) == 1 {
				n = name
			}
			out = append(out, templateDoc{name: n, apiVersion: pick(d.APIVersion, apiVersion), body: d.Body})
		case template.FormProperties:
			if name == "" {
				return nil, usageError("a bare properties file needs --name")
			}
			out = append(out, templateDoc{name: name, apiVersion: pick(template.LatestAPIVersion(), apiVersion), body: d.Body})
		default:
			n := pick(d.Name, name)
			if n == "" {
				return nil, usageError("the template has no name: give --name")
			}
			if loc, _ := d.Body["location"].(string); loc == "" {
				d.Body["location"] = location
			}
			out = append(out, templateDoc{name: n, apiVersion: pick(pick(template.LatestAPIVersion(), d.APIVersion), apiVersion), body: d.Body})
		}
	}
	return out, nil
}

// newTemplateClientCommands are the server-side `goldsmith template`
// subcommands: create, run, show, ls, logs, cancel, delete.
func newTemplateClientCommands() []*cobra.Command {
	return []*cobra.Command{newTemplateCreateCommand(), newTemplateRunCommand(), newTemplateShowCommand(), newTemplateListCommand(),
		newTemplateLogsCommand(), newTemplateCancelCommand(), newTemplateDeleteCommand()}
}

func newTemplateCreateCommand() *cobra.Command {
	var f clientFlags
	var file, params, name, apiVersion, location string
	var noWait bool
	cmd := &cobra.Command{
		Use:   "create -f FILE -g GROUP",
		Short: "Submit an image template to a goldsmith server",
		Long: `Create submits an image template (the resource you PUT to AIB, a bare
properties object with --name, or an ARM deployment template evaluated with
--parameters) and waits for its submission: validation and the download of
every script and file into its staging resource group. Exit status 1 when the
submission fails; the template is kept, Failed, with AIB's provisioningError.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client(true)
			if err != nil {
				return err
			}
			if file == "" {
				return usageError("-f FILE is required")
			}
			data, err := os.ReadFile(file)
			if err != nil {
				return usageError("read %s: %v", file, err)
			}
			pv, err := readParameters(params)
			if err != nil {
				return err
			}
			docs, err := templateDocs(data, pv, f.subscription, f.group, location, name, apiVersion)
			if err != nil {
				var ee *exitError
				if errors.As(err, &ee) {
					return err
				}
				return clientFailure(fmt.Errorf("%s: %w", file, err))
			}
			var results []map[string]any
			failed := false
			for _, d := range docs {
				t, opURL, err := c.PutTemplate(cmd.Context(), f.group, d.name, d.apiVersion, d.body)
				if err != nil {
					return clientFailure(fmt.Errorf("submit %s: %w", d.name, err))
				}
				if !noWait {
					if _, err := c.Wait(cmd.Context(), opURL, nil); err != nil {
						return clientFailure(err)
					}
					if t, err = c.GetTemplate(cmd.Context(), f.group, d.name); err != nil {
						return clientFailure(err)
					}
				}
				failed = failed || field(t, "properties", "provisioningState") == "Failed"
				results = append(results, t)
			}
			if err := printTemplates(cmd.OutOrStdout(), f.output, results...); err != nil {
				return err
			}
			if failed {
				return &exitError{code: exitFailure}
			}
			return nil
		},
	}
	addClientFlags(cmd, &f, true)
	fl := cmd.Flags()
	fl.StringVarP(&file, "file", "f", "", "template file")
	fl.StringVarP(&params, "parameters", "p", "", "ARM parameter file for deployment templates")
	fl.StringVar(&name, "name", "", "template name (default: the file's name property)")
	fl.StringVar(&apiVersion, "api-version", "", "imageTemplates api-version (default: the file's apiVersion, else the latest)")
	fl.StringVarP(&location, "location", "l", template.DefaultLocation, "region for templates that name none")
	fl.BoolVar(&noWait, "no-wait", false, "do not wait for the submission to finish")
	return cmd
}

func newTemplateRunCommand() *cobra.Command {
	var f clientFlags
	var wait bool
	cmd := &cobra.Command{
		Use:   "run NAME -g GROUP",
		Short: "Start a run of a template",
		Long: `Run starts building the image. With --wait it follows the run's phases
(on stderr) until it ends, prints lastRunStatus and the runOutputs, and exits
with status 1 unless the run Succeeded.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(true)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			opURL, err := c.Run(ctx, f.group, args[0])
			if err != nil {
				return clientFailure(err)
			}
			if !wait {
				fmt.Fprintf(cmd.OutOrStdout(), "Run of %s started; follow it with: goldsmith template logs %s -g %s -f\n", args[0], args[0], f.group)
				return nil
			}
			last := ""
			_, err = c.Wait(ctx, opURL, func(map[string]any) {
				t, err := c.GetTemplate(ctx, f.group, args[0])
				if err != nil {
					return
				}
				if ph := field(t, "properties", "lastRunStatus", "runSubState"); ph != last {
					fmt.Fprintf(cmd.ErrOrStderr(), "%s  %s\n", time.Now().Format("15:04:05"), ph)
					last = ph
				}
			})
			if err != nil {
				return clientFailure(err)
			}
			t, err := c.GetTemplate(ctx, f.group, args[0])
			if err != nil {
				return clientFailure(err)
			}
			outs, _ := c.RunOutputs(ctx, f.group, args[0])
			if f.output == "json" {
				if err := printJSON(cmd.OutOrStdout(), map[string]any{"template": t, "runOutputs": outs}); err != nil {
					return err
				}
			} else {
				if err := printTemplates(cmd.OutOrStdout(), "table", t); err != nil {
					return err
				}
				if len(outs) > 0 {
					fmt.Fprintln(cmd.OutOrStdout())
					rows := make([][]string, len(outs))
					for i, o := range outs {
						art := field(o, "properties", "artifactId")
						if art == "" {
							art = field(o, "properties", "artifactUri")
						}
						rows[i] = []string{field(o, "name"), field(o, "properties", "provisioningState"), art}
					}
					if err := printTable(cmd.OutOrStdout(), []string{"RUN OUTPUT", "STATE", "ARTIFACT"}, rows); err != nil {
						return err
					}
				}
			}
			if field(t, "properties", "lastRunStatus", "runState") != "Succeeded" {
				return &exitError{code: exitFailure}
			}
			return nil
		},
	}
	addClientFlags(cmd, &f, true)
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the run to end; exit 1 unless it succeeded")
	return cmd
}

func newTemplateShowCommand() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "show NAME -g GROUP",
		Short: "Show a template and its last run",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(true)
			if err != nil {
				return err
			}
			t, err := c.GetTemplate(cmd.Context(), f.group, args[0])
			if err != nil {
				return clientFailure(err)
			}
			return printTemplates(cmd.OutOrStdout(), f.output, t)
		},
	}
	addClientFlags(cmd, &f, true)
	return cmd
}

func newTemplateListCommand() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:     "ls [-g GROUP]",
		Aliases: []string{"list"},
		Short:   "List templates of a group, or of the subscription",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client(false)
			if err != nil {
				return err
			}
			ts, err := c.ListTemplates(cmd.Context(), f.group)
			if err != nil {
				return clientFailure(err)
			}
			if f.output == "json" {
				if ts == nil {
					ts = []map[string]any{}
				}
				return printJSON(cmd.OutOrStdout(), ts)
			}
			return printTemplates(cmd.OutOrStdout(), "table", ts...)
		},
	}
	addClientFlags(cmd, &f, true)
	return cmd
}

func newTemplateLogsCommand() *cobra.Command {
	var f clientFlags
	var follow bool
	var runID string
	cmd := &cobra.Command{
		Use:   "logs NAME -g GROUP [-f]",
		Short: "Print a run's customization.log; -f follows it live until the run ends",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(true)
			if err != nil {
				return err
			}
			rd, err := c.Logs(cmd.Context(), f.group, args[0], runID, follow)
			if err != nil {
				return clientFailure(err)
			}
			defer rd.Close()
			_, err = io.Copy(cmd.OutOrStdout(), rd)
			if err != nil && cmd.Context().Err() == nil {
				return clientFailure(err)
			}
			return nil
		},
	}
	addClientFlags(cmd, &f, true)
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "stream the log until the run ends")
	cmd.Flags().StringVar(&runID, "run", "latest", "run id")
	return cmd
}

func newTemplateCancelCommand() *cobra.Command {
	var f clientFlags
	var noWait bool
	cmd := &cobra.Command{
		Use:   "cancel NAME -g GROUP",
		Short: "Cancel the template's run in progress",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(true)
			if err != nil {
				return err
			}
			opURL, err := c.Cancel(cmd.Context(), f.group, args[0])
			if err != nil {
				return clientFailure(err)
			}
			if !noWait {
				if _, err := c.Wait(cmd.Context(), opURL, nil); err != nil {
					return clientFailure(err)
				}
			}
			t, err := c.GetTemplate(cmd.Context(), f.group, args[0])
			if err != nil {
				return clientFailure(err)
			}
			return printTemplates(cmd.OutOrStdout(), f.output, t)
		},
	}
	addClientFlags(cmd, &f, true)
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "do not wait for the run to stop")
	return cmd
}

func newTemplateDeleteCommand() *cobra.Command {
	var f clientFlags
	var noWait bool
	cmd := &cobra.Command{
		Use:   "delete NAME -g GROUP",
		Short: "Delete a template, its runs and its staging resource group (a run in progress is canceled)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(true)
			if err != nil {
				return err
			}
			opURL, err := c.DeleteTemplate(cmd.Context(), f.group, args[0])
			if err != nil {
				return clientFailure(err)
			}
			if opURL == "" {
				fmt.Fprintf(cmd.OutOrStdout(), "%s does not exist\n", args[0])
				return nil
			}
			if !noWait {
				if _, err := c.Wait(cmd.Context(), opURL, nil); err != nil {
					return clientFailure(err)
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted %s\n", args[0])
			return nil
		},
	}
	addClientFlags(cmd, &f, true)
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "do not wait for the deletion to finish")
	return cmd
}

// newGalleryCommand is `goldsmith gallery create` and `goldsmith gallery image create`.
func newGalleryCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "gallery", Short: "Manage image galleries on a goldsmith server"}
	var f clientFlags
	var location, description string
	create := &cobra.Command{
		Use:   "create NAME -g GROUP",
		Short: "Create (or update) a gallery",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(true)
			if err != nil {
				return err
			}
			g, err := c.PutGallery(cmd.Context(), f.group, args[0], location, description)
			if err != nil {
				return clientFailure(err)
			}
			if f.output == "json" {
				return printJSON(cmd.OutOrStdout(), g)
			}
			return printTable(cmd.OutOrStdout(), []string{"NAME", "RESOURCE GROUP", "LOCATION", "STATE"},
				[][]string{{field(g, "name"), f.group, field(g, "location"), field(g, "properties", "provisioningState")}})
		},
	}
	addClientFlags(create, &f, true)
	create.Flags().StringVarP(&location, "location", "l", template.DefaultLocation, "region")
	create.Flags().StringVar(&description, "description", "", "description")

	image := &cobra.Command{Use: "image", Short: "Manage gallery image definitions"}
	var fi clientFlags
	var iloc, osType, osState, hyperV, publisher, offer, sku string
	icreate := &cobra.Command{
		Use:   "create GALLERY NAME -g GROUP --publisher P --offer O --sku S",
		Short: "Create (or update) a gallery image definition",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := fi.client(true)
			if err != nil {
				return err
			}
			if publisher == "" || offer == "" || sku == "" {
				return usageError("--publisher, --offer and --sku are required")
			}
			d, err := c.PutGalleryImage(cmd.Context(), fi.group, args[0], args[1], iloc, map[string]any{
				"osType": osType, "osState": osState, "hyperVGeneration": hyperV,
				"identifier": map[string]any{"publisher": publisher, "offer": offer, "sku": sku}})
			if err != nil {
				return clientFailure(err)
			}
			if fi.output == "json" {
				return printJSON(cmd.OutOrStdout(), d)
			}
			return printTable(cmd.OutOrStdout(), []string{"NAME", "GALLERY", "OS", "STATE", "GENERATION", "IDENTIFIER"},
				[][]string{{field(d, "name"), args[0], field(d, "properties", "osType"), field(d, "properties", "osState"),
					field(d, "properties", "hyperVGeneration"), publisher + ":" + offer + ":" + sku}})
		},
	}
	addClientFlags(icreate, &fi, true)
	ifl := icreate.Flags()
	ifl.StringVarP(&iloc, "location", "l", template.DefaultLocation, "region")
	ifl.StringVar(&osType, "os-type", "Linux", "Linux or Windows")
	ifl.StringVar(&osState, "os-state", "Generalized", "Generalized or Specialized")
	ifl.StringVar(&hyperV, "hyperv-generation", "V1", "V1 or V2")
	ifl.StringVar(&publisher, "publisher", "", "identifier publisher")
	ifl.StringVar(&offer, "offer", "", "identifier offer")
	ifl.StringVar(&sku, "sku", "", "identifier sku")
	image.AddCommand(icreate)
	cmd.AddCommand(create, image)
	return cmd
}

// newImageCommand is `goldsmith image ls` and `goldsmith image show`.
func newImageCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "image", Short: "Managed images on a goldsmith server"}
	row := func(i map[string]any) []string {
		return []string{field(i, "name"), groupOf(field(i, "id")), field(i, "location"), field(i, "properties", "storageProfile", "osDisk", "osType"),
			field(i, "properties", "hyperVGeneration"), field(i, "properties", "storageProfile", "osDisk", "diskSizeGB")}
	}
	header := []string{"NAME", "RESOURCE GROUP", "LOCATION", "OS", "GENERATION", "SIZE GB"}
	var fl clientFlags
	ls := &cobra.Command{
		Use:     "ls [-g GROUP]",
		Aliases: []string{"list"},
		Short:   "List managed images",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := fl.client(false)
			if err != nil {
				return err
			}
			imgs, err := c.ListImages(cmd.Context(), fl.group)
			if err != nil {
				return clientFailure(err)
			}
			if fl.output == "json" {
				if imgs == nil {
					imgs = []map[string]any{}
				}
				return printJSON(cmd.OutOrStdout(), imgs)
			}
			rows := make([][]string, len(imgs))
			for i, img := range imgs {
				rows[i] = row(img)
			}
			return printTable(cmd.OutOrStdout(), header, rows)
		},
	}
	addClientFlags(ls, &fl, true)
	var fs clientFlags
	show := &cobra.Command{
		Use:   "show NAME -g GROUP",
		Short: "Show a managed image",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := fs.client(true)
			if err != nil {
				return err
			}
			img, err := c.GetImage(cmd.Context(), fs.group, args[0])
			if err != nil {
				return clientFailure(err)
			}
			if fs.output == "json" {
				return printJSON(cmd.OutOrStdout(), img)
			}
			return printTable(cmd.OutOrStdout(), header, [][]string{row(img)})
		},
	}
	addClientFlags(show, &fs, true)
	cmd.AddCommand(ls, show, newImageExportCommand())
	return cmd
}
