package arm

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestSubscriptionEndpoints(t *testing.T) {
	s := startSite(t, siteOptions{})
	tests := []struct {
		name, method, path, version string
		status                      int
		check                       func(t *testing.T, body map[string]any)
	}{
		{"tenants", http.MethodGet, "/tenants", "2019-11-01", http.StatusOK, func(t *testing.T, b map[string]any) {
			if v, _ := b["value"].([]any); len(v) != 1 || str(v[0].(map[string]any), "tenantId") != "00000000-0000-0000-0000-000000000000" {
				t.Errorf("tenants %v", b)
			}
		}},
		{"subscriptions without api-version", http.MethodGet, "/subscriptions", "", http.StatusBadRequest, nil},
		{"one subscription", http.MethodGet, "/subscriptions/" + sub, "2019-11-01", http.StatusOK, func(t *testing.T, b map[string]any) {
			if str(b, "state") != "Enabled" || str(b, "subscriptionId") != sub {
				t.Errorf("subscription %v", b)
			}
		}},
		{"locations", http.MethodGet, "/subscriptions/" + sub + "/locations", "2019-11-01", http.StatusOK, func(t *testing.T, b map[string]any) {
			v, _ := b["value"].([]any)
			var names []string
			for _, l := range v {
				names = append(names, str(l.(map[string]any), "name")+"="+str(l.(map[string]any), "displayName"))
			}
			if got := strings.Join(names, ","); !strings.Contains(got, "westus2=West US 2") || len(v) != 8 {
				t.Errorf("locations %s", got)
			}
		}},
		{"provider", http.MethodGet, "/subscriptions/" + sub + "/providers/microsoft.virtualmachineimages", "2021-04-01", http.StatusOK, func(t *testing.T, b map[string]any) {
			if str(b, "namespace") != "Microsoft.VirtualMachineImages" || str(b, "registrationState") != "Registered" {
				t.Errorf("provider %v", b)
			}
			types, _ := b["resourceTypes"].([]any)
			for _, rt := range types {
				m := rt.(map[string]any)
				if str(m, "resourceType") != "imageTemplates" {
					continue
				}
				versions, _ := m["apiVersions"].([]any)
				// az resource takes the first that is not a preview.
				if len(versions) < 10 || versions[0] != "2025-10-01" || versions[len(versions)-1] != "2018-02-01-preview" {
					t.Errorf("imageTemplates apiVersions %v, want newest first", versions)
				}
				return
			}
			t.Errorf("no imageTemplates in %v", b)
		}},
		{"compute provider", http.MethodGet, "/subscriptions/" + sub + "/providers/Microsoft.Compute", "2021-04-01", http.StatusOK, func(t *testing.T, b map[string]any) {
			if types, _ := b["resourceTypes"].([]any); len(types) != 4 {
				t.Errorf("Microsoft.Compute resource types %v", types)
			}
		}},
		{"identity provider", http.MethodGet, "/subscriptions/" + sub + "/providers/Microsoft.ManagedIdentity", "2021-04-01", http.StatusOK, nil},
		{"providers", http.MethodGet, "/subscriptions/" + sub + "/providers", "2021-04-01", http.StatusOK, func(t *testing.T, b map[string]any) {
			if v, _ := b["value"].([]any); len(v) != 3 {
				t.Errorf("providers %v", b)
			}
		}},
		{"register", http.MethodPost, "/subscriptions/" + sub + "/providers/Microsoft.VirtualMachineImages/register", "2021-04-01", http.StatusOK, func(t *testing.T, b map[string]any) {
			if str(b, "registrationState") != "Registered" {
				t.Errorf("register %v", b)
			}
		}},
		{"unknown provider", http.MethodGet, "/subscriptions/" + sub + "/providers/Microsoft.Storage", "2021-04-01", http.StatusNotFound, nil},
		{"GET register", http.MethodGet, "/subscriptions/" + sub + "/providers/Microsoft.Compute/register", "2021-04-01", http.StatusMethodNotAllowed, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := s.call(t, tt.method, tt.path, tt.version, nil)
			if resp.StatusCode != tt.status {
				t.Fatalf("%s %s: %s %v, want %d", tt.method, tt.path, resp.Status, body, tt.status)
			}
			if tt.status >= 400 && str(body, "error", "code") == "" {
				t.Fatalf("error answer without ARM's envelope: %v", body)
			}
			if tt.check != nil {
				tt.check(t, body)
			}
		})
	}
}

// TestCLIPaths: the paths the Azure CLI sends (../shared/docs/AZ-CLI.md):
// lower-case resourcegroups, HEAD on a group, `//` after the namespace and
// the action's own casing (/Run); a run records who started it.
func TestCLIPaths(t *testing.T) {
	s := startSite(t, siteOptions{Executor: standIn(200 * time.Millisecond)})
	lower := "/subscriptions/" + sub + "/resourcegroups/rg1"
	for _, tt := range []struct {
		method string
		status int
	}{{http.MethodHead, http.StatusNotFound}, {http.MethodPut, http.StatusCreated}, {http.MethodHead, http.StatusNoContent}} {
		var body any
		if tt.method == http.MethodPut {
			body = map[string]any{"location": "westus2"}
		}
		if resp, b := s.call(t, tt.method, lower, "2021-04-01", body); resp.StatusCode != tt.status {
			t.Fatalf("%s %s: %s %v, want %d", tt.method, lower, resp.Status, b, tt.status)
		}
	}
	for _, id := range []string{"id1"} {
		if resp, b := s.call(t, http.MethodPut, rgPath("rg1")+"/providers/Microsoft.ManagedIdentity/userAssignedIdentities/"+id, "2023-01-31",
			map[string]any{"location": "westus2"}); resp.StatusCode >= 300 {
			t.Fatalf("identity: %s %v", resp.Status, b)
		}
	}
	doubled := lower + "/providers/Microsoft.VirtualMachineImages//imageTemplates/t1"
	resp, body := s.call(t, http.MethodPut, doubled, "2025-10-01", linuxTemplate("rg1", inline("echo hi")))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT %s: %s %v", doubled, resp.Status, body)
	}
	pollOp(t, s, resp.Header.Get("Azure-AsyncOperation"))
	if resp, body := s.call(t, http.MethodGet, doubled, "2025-10-01", nil); resp.StatusCode != http.StatusOK || str(body, "properties", "provisioningState") != "Succeeded" {
		t.Fatalf("GET %s: %s %v", doubled, resp.Status, body)
	}
	for i, action := range []string{"Run", "run", "RUN"} {
		resp, body := s.call(t, http.MethodPost, doubled+"/"+action, "2025-10-01", nil)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST /%s: %s %v", action, resp.Status, body)
		}
		if !strings.HasPrefix(resp.Header.Get("Azure-AsyncOperation"), s.URL+"/") {
			t.Errorf("Azure-AsyncOperation %q is not on the server's URL", resp.Header.Get("Azure-AsyncOperation"))
		}
		if op := pollOp(t, s, resp.Header.Get("Azure-AsyncOperation")); str(op, "status") != "Succeeded" {
			t.Fatalf("run %d: %v", i, op)
		}
	}
	_, run := s.call(t, http.MethodGet, "/goldsmith/v1"+tmplPath("rg1", "t1")+"/runs/latest", "", nil)
	if by := str(run, "startedBy"); by != "static token 2" {
		t.Errorf("run started by %q, want the static token that started it", by)
	}
	ctx := context.Background()
	p, secret, err := s.Auth.Directory().Create(ctx, "ci", []string{sub})
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := s.Auth.Issue(ctx, p.ClientID, secret, "aud")
	if err != nil {
		t.Fatal(err)
	}
	resp, body = s.callWith(t, http.MethodPost, tmplPath("rg1", "t1")+"/run", "2022-02-14", nil, tok.AccessToken)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("run with a principal's token: %s %v", resp.Status, body)
	}
	pollOp(t, s, resp.Header.Get("Azure-AsyncOperation"))
	_, run = s.call(t, http.MethodGet, "/goldsmith/v1"+tmplPath("rg1", "t1")+"/runs/latest", "", nil)
	if by := str(run, "startedBy"); by != "principal ci ("+p.ClientID+")" {
		t.Errorf("run started by %q, want principal ci", by)
	}
}
