package arm

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/goldsmith-dev/goldsmith/resource"
	"github.com/goldsmith-dev/goldsmith/template"
)

func jsonEncoder(w io.Writer) *json.Encoder {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc
}

// readBody decodes a JSON object body. Malformed JSON, a body that is not an
// object and an oversized body are ARM's InvalidRequestContent.
func readBody(rq *request) (map[string]any, error) {
	data, err := io.ReadAll(rq.r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, errorf(resource.KindBadRequest, "InvalidRequestContent", "The request content is larger than %d bytes.", tooBig.Limit)
		}
		return nil, errorf(resource.KindBadRequest, "InvalidRequestContent", "The request content could not be read: %v", err)
	}
	if len(data) == 0 {
		return nil, errorf(resource.KindBadRequest, "InvalidRequestContent", "The request content was empty: a JSON object is required.")
	}
	v, err := template.DecodeJSON(data)
	if err != nil {
		return nil, errorf(resource.KindBadRequest, "InvalidRequestContent", "The request content was invalid and could not be deserialized: %v", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errorf(resource.KindBadRequest, "InvalidRequestContent", "The request content was invalid and could not be deserialized: a JSON object is required.")
	}
	return m, nil
}

// readInput decodes the body of a plain resource PUT.
func readInput(rq *request) (resource.Input, error) {
	var in resource.Input
	m, err := readBody(rq)
	if err != nil {
		return in, err
	}
	data, _ := json.Marshal(m)
	if err := json.Unmarshal(data, &in); err != nil {
		return in, errorf(resource.KindBadRequest, "InvalidRequestContent", "The request content was invalid and could not be deserialized: %v", err)
	}
	return in, nil
}

// page reads the paging token of a list request.
func (s *Server) page(rq *request) (resource.Page, error) {
	p := resource.Page{Limit: s.pageSize}
	if tok := rq.r.URL.Query().Get("$skiptoken"); tok != "" {
		after, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil {
			return p, errorf(resource.KindBadRequest, "InvalidSkipToken", "The $skiptoken %q is not one goldsmith issued.", tok)
		}
		p.After = string(after)
	}
	if top := rq.r.URL.Query().Get("$top"); top != "" {
		if n, err := strconv.Atoi(top); err == nil && n > 0 && n < p.Limit {
			p.Limit = n
		}
	}
	return p, nil
}

// nextLink is the absolute URL of the page after next (a token from the service).
func (s *Server) nextLink(rq *request, next string) string {
	if next == "" {
		return ""
	}
	q := rq.r.URL.Query()
	q.Set("$skiptoken", base64.RawURLEncoding.EncodeToString([]byte(next)))
	u := url.URL{Path: rq.r.URL.Path, RawQuery: q.Encode()}
	return rq.base + u.RequestURI()
}

// renderAll renders each element of a list for a list answer.
func renderAll[T any](list []T, render func(T) map[string]any) []any {
	items := make([]any, len(list))
	for i, e := range list {
		items[i] = render(e)
	}
	return items
}

// writeList answers a list page.
func (s *Server) writeList(rq *request, items []any, next string) {
	if items == nil {
		items = []any{}
	}
	body := map[string]any{"value": items}
	if link := s.nextLink(rq, next); link != "" {
		body["nextLink"] = link
	}
	writeJSON(rq.w, http.StatusOK, body)
}

// abs makes an absolute URL of a server path, with the request's api-version.
func (rq *request) abs(p string) string {
	u := url.URL{Path: p}
	if rq.version != "" {
		u.RawQuery = url.Values{"api-version": {rq.version}}.Encode()
	}
	return rq.base + u.RequestURI()
}
