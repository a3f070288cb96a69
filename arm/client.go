package arm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/goldsmith-dev/goldsmith/jobs"
)

// Client is a small client of a goldsmith server's API, for the CLI. It
// speaks the same ARM API as Azure SDKs do, plus goldsmith's log endpoint.
// Resources are returned typed (see Answer).
type Client struct {
	BaseURL      string // e.g. http://127.0.0.1:8080
	Token        string
	Subscription string
	HTTP         *http.Client
	// APIVersion is the imageTemplates api-version; default 2024-02-01.
	APIVersion string
	// PollEvery is the wait between operation polls when the server gives
	// no Retry-After; default 2s.
	PollEvery time.Duration
}

// API versions the client sends for the other resource types.
const (
	clientGroupsVersion   = "2021-04-01"
	clientGalleryVersion  = "2024-03-03"
	clientImagesVersion   = "2024-11-01"
	defaultClientTemplate = "2024-02-01"
)

// APIError is an error answer.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s (HTTP %d): %s", e.Code, e.Status, e.Message)
}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

func (c *Client) templateVersion() string {
	if c.APIVersion != "" {
		return c.APIVersion
	}
	return defaultClientTemplate
}

// url builds an absolute URL of path with an api-version.
func (c *Client) url(path, apiVersion string) string {
	u := strings.TrimSuffix(c.BaseURL, "/") + path
	if apiVersion != "" {
		u += "?api-version=" + url.QueryEscape(apiVersion)
	}
	return u
}

// do sends a request to an absolute URL and returns the answer with its
// body read; error answers become *APIError.
func (c *Client) do(ctx context.Context, method, u string, body any) (*http.Response, []byte, error) {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return nil, nil, err
		}
		rd = bytes.NewReader(data)
	}
	req, err := c.newRequest(ctx, method, u, rd)
	if err != nil {
		return nil, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode >= 400 {
		return resp, data, decodeAPIError(resp.StatusCode, data)
	}
	return resp, data, nil
}

// newRequest makes a request carrying the client's bearer token.
func (c *Client) newRequest(ctx context.Context, method, u string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	return req, nil
}

// stream GETs u and returns the answer with its body still open, for
// bodies too large or too long-lived to read at once (logs, disks).
func (c *Client) stream(ctx context.Context, u string) (*http.Response, error) {
	req, err := c.newRequest(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return nil, decodeAPIError(resp.StatusCode, data)
	}
	return resp, nil
}

func decodeAPIError(status int, data []byte) error {
	var e struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Error   *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	_ = json.Unmarshal(data, &e)
	if e.Error != nil {
		e.Code, e.Message = e.Error.Code, e.Error.Message
	}
	if e.Code == "" {
		e.Code, e.Message = http.StatusText(status), strings.TrimSpace(string(data))
	}
	return &APIError{Status: status, Code: e.Code, Message: e.Message}
}

// answer decodes an answer into a typed T, keeping the answer as sent.
func answer[T any, PT interface {
	*T
	keep(json.RawMessage)
}](ctx context.Context, c *Client, method, u string, body any) (T, *http.Response, error) {
	var v T
	resp, data, err := c.do(ctx, method, u, body)
	if err != nil {
		return v, resp, err
	}
	data = bytes.TrimSpace(data)
	if len(data) > 0 {
		if err := json.Unmarshal(data, &v); err != nil {
			return v, resp, fmt.Errorf("decode the answer of %s %s: %w", method, u, err)
		}
	}
	PT(&v).keep(json.RawMessage(data))
	return v, resp, nil
}

// answers reads every page of a list.
func answers[T any, PT interface {
	*T
	keep(json.RawMessage)
}](ctx context.Context, c *Client, u string) ([]T, error) {
	var out []T
	for u != "" {
		resp, data, err := c.do(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, err
		}
		var page struct {
			Value    []json.RawMessage `json:"value"`
			NextLink string            `json:"nextLink"`
		}
		if err := json.Unmarshal(data, &page); err != nil {
			return nil, fmt.Errorf("decode the answer of GET %s (%s): %w", u, resp.Status, err)
		}
		for _, raw := range page.Value {
			var v T
			if err := json.Unmarshal(raw, &v); err != nil {
				return nil, fmt.Errorf("decode the answer of GET %s: %w", u, err)
			}
			PT(&v).keep(raw)
			out = append(out, v)
		}
		u = page.NextLink
	}
	return out, nil
}

func (c *Client) groupPath(rg string) string {
	return "/subscriptions/" + url.PathEscape(c.Subscription) + "/resourceGroups/" + url.PathEscape(rg)
}

// TemplatePath is the resource path of a template.
func (c *Client) TemplatePath(rg, name string) string {
	return c.groupPath(rg) + "/providers/Microsoft.VirtualMachineImages/imageTemplates/" + url.PathEscape(name)
}

// PutGroup creates or updates a resource group.
func (c *Client) PutGroup(ctx context.Context, name, location string) (Group, error) {
	g, _, err := answer[Group](ctx, c, http.MethodPut, c.url(c.groupPath(name), clientGroupsVersion), map[string]any{"location": location})
	return g, err
}

// PutTemplate submits a template and returns it (Creating) and the URL of
// its submission operation.
func (c *Client) PutTemplate(ctx context.Context, rg, name, apiVersion string, body map[string]any) (ImageTemplate, string, error) {
	if apiVersion == "" {
		apiVersion = c.templateVersion()
	}
	t, resp, err := answer[ImageTemplate](ctx, c, http.MethodPut, c.url(c.TemplatePath(rg, name), apiVersion), body)
	if err != nil {
		return t, "", err
	}
	return t, resp.Header.Get("Azure-AsyncOperation"), nil
}

// GetTemplate reads a template.
func (c *Client) GetTemplate(ctx context.Context, rg, name string) (ImageTemplate, error) {
	t, _, err := answer[ImageTemplate](ctx, c, http.MethodGet, c.url(c.TemplatePath(rg, name), c.templateVersion()), nil)
	return t, err
}

// ListTemplates lists the templates of a group, or of the subscription when rg is "".
func (c *Client) ListTemplates(ctx context.Context, rg string) ([]ImageTemplate, error) {
	p := "/subscriptions/" + url.PathEscape(c.Subscription)
	if rg != "" {
		p = c.groupPath(rg)
	}
	return answers[ImageTemplate](ctx, c, c.url(p+"/providers/Microsoft.VirtualMachineImages/imageTemplates", c.templateVersion()))
}

// Run starts a run and returns its operation URL.
func (c *Client) Run(ctx context.Context, rg, name string) (string, error) {
	resp, _, err := c.do(ctx, http.MethodPost, c.url(c.TemplatePath(rg, name)+"/run", c.templateVersion()), nil)
	if err != nil {
		return "", err
	}
	return resp.Header.Get("Azure-AsyncOperation"), nil
}

// Cancel cancels the run in progress and returns the cancel operation's URL.
func (c *Client) Cancel(ctx context.Context, rg, name string) (string, error) {
	resp, _, err := c.do(ctx, http.MethodPost, c.url(c.TemplatePath(rg, name)+"/cancel", c.templateVersion()), nil)
	if err != nil {
		return "", err
	}
	return resp.Header.Get("Azure-AsyncOperation"), nil
}

// DeleteTemplate starts deleting a template and returns the operation URL,
// or "" when there was no such template.
func (c *Client) DeleteTemplate(ctx context.Context, rg, name string) (string, error) {
	resp, _, err := c.do(ctx, http.MethodDelete, c.url(c.TemplatePath(rg, name), c.templateVersion()), nil)
	if err != nil {
		return "", err
	}
	if resp.StatusCode == http.StatusNoContent {
		return "", nil
	}
	return resp.Header.Get("Azure-AsyncOperation"), nil
}

// RunOutputs lists a template's runOutputs.
func (c *Client) RunOutputs(ctx context.Context, rg, name string) ([]RunOutput, error) {
	return answers[RunOutput](ctx, c, c.url(c.TemplatePath(rg, name)+"/runOutputs", c.templateVersion()))
}

// Wait polls an operation until it ends and returns its status resource.
// progress, when set, is called after every poll.
func (c *Client) Wait(ctx context.Context, opURL string, progress func(op Operation)) (Operation, error) {
	if opURL == "" {
		return Operation{}, fmt.Errorf("the server gave no operation to wait for")
	}
	for {
		op, resp, err := answer[Operation](ctx, c, http.MethodGet, opURL, nil)
		if err != nil {
			return op, err
		}
		if progress != nil {
			progress(op)
		}
		if op.Done() {
			return op, nil
		}
		wait := c.PollEvery
		if wait <= 0 {
			wait = 2 * time.Second
		}
		if ra := resp.Header.Get("Retry-After"); ra != "" {
			var secs int
			if _, err := fmt.Sscan(ra, &secs); err == nil && secs > 0 && time.Duration(secs)*time.Second < wait {
				wait = time.Duration(secs) * time.Second
			}
		}
		select {
		case <-ctx.Done():
			return op, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// Logs opens a run's customization.log (run "" is the latest); with
// follow it streams until the run ends.
func (c *Client) Logs(ctx context.Context, rg, name, run string, follow bool) (io.ReadCloser, error) {
	if run == "" {
		run = "latest"
	}
	u := strings.TrimSuffix(c.BaseURL, "/") + "/goldsmith/v1" + c.TemplatePath(rg, name) + "/runs/" + url.PathEscape(run) + "/log"
	if follow {
		u += "?follow=true"
	}
	resp, err := c.stream(ctx, u)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// Workers lists the processes on the server's job queue (GET
// /goldsmith/v1/workers).
func (c *Client) Workers(ctx context.Context) ([]jobs.Worker, error) {
	_, data, err := c.do(ctx, http.MethodGet, strings.TrimSuffix(c.BaseURL, "/")+"/goldsmith/v1/workers", nil)
	if err != nil {
		return nil, err
	}
	var v struct {
		Value []jobs.Worker `json:"value"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("decode the workers: %w", err)
	}
	return v.Value, nil
}

// PutGallery creates or updates a gallery.
func (c *Client) PutGallery(ctx context.Context, rg, name, location, description string) (Gallery, error) {
	body := map[string]any{"location": location, "properties": map[string]any{}}
	if description != "" {
		body["properties"] = map[string]any{"description": description}
	}
	g, _, err := answer[Gallery](ctx, c, http.MethodPut, c.url(c.groupPath(rg)+"/providers/Microsoft.Compute/galleries/"+url.PathEscape(name), clientGalleryVersion), body)
	return g, err
}

// PutGalleryImage creates or updates a gallery image definition.
func (c *Client) PutGalleryImage(ctx context.Context, rg, gallery, name, location string, props map[string]any) (GalleryImage, error) {
	p := c.groupPath(rg) + "/providers/Microsoft.Compute/galleries/" + url.PathEscape(gallery) + "/images/" + url.PathEscape(name)
	d, _, err := answer[GalleryImage](ctx, c, http.MethodPut, c.url(p, clientGalleryVersion), map[string]any{"location": location, "properties": props})
	return d, err
}

// ListImages lists managed images of a group, or of the subscription when rg is "".
func (c *Client) ListImages(ctx context.Context, rg string) ([]Image, error) {
	p := "/subscriptions/" + url.PathEscape(c.Subscription)
	if rg != "" {
		p = c.groupPath(rg)
	}
	return answers[Image](ctx, c, c.url(p+"/providers/Microsoft.Compute/images", clientImagesVersion))
}

// GetImage reads a managed image.
func (c *Client) GetImage(ctx context.Context, rg, name string) (Image, error) {
	img, _, err := answer[Image](ctx, c, http.MethodGet, c.url(c.groupPath(rg)+"/providers/Microsoft.Compute/images/"+url.PathEscape(name), clientImagesVersion), nil)
	return img, err
}

// Disk is the disk behind a managed image or gallery image version, being
// downloaded.
type Disk struct {
	Body        io.ReadCloser
	Format      string // qcow2 or raw
	SHA256      string
	Region      string
	VirtualSize int64
	Size        int64
}

// Disk starts downloading the disk behind a managed image or gallery image
// version (id), as stored in region ("" for the resource's own region).
func (c *Client) Disk(ctx context.Context, id, region string) (*Disk, error) {
	u := strings.TrimSuffix(c.BaseURL, "/") + "/goldsmith/v1" + id + "/disk"
	if region != "" {
		u += "?region=" + url.QueryEscape(region)
	}
	// A disk in a bucket region answers 307 to a presigned GET of the
	// object store: the disk's headers are on the redirect, and the
	// bearer token stays with goldsmith.
	req, err := c.newRequest(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	hc := *c.http()
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	h := resp.Header
	if resp.StatusCode == http.StatusTemporaryRedirect {
		resp.Body.Close()
		loc, err := resp.Location()
		if err != nil {
			return nil, fmt.Errorf("disk redirect: %w", err)
		}
		get, err := http.NewRequestWithContext(ctx, http.MethodGet, loc.String(), nil)
		if err != nil {
			return nil, err
		}
		if resp, err = c.http().Do(get); err != nil {
			return nil, err
		}
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return nil, decodeAPIError(resp.StatusCode, data)
	}
	var vsize int64
	fmt.Sscan(h.Get("X-Goldsmith-Disk-Virtual-Size"), &vsize)
	return &Disk{Body: resp.Body, Format: h.Get("X-Goldsmith-Disk-Format"), SHA256: h.Get("X-Goldsmith-Disk-SHA256"),
		Region: h.Get("X-Goldsmith-Disk-Region"), VirtualSize: vsize, Size: resp.ContentLength}, nil
}
