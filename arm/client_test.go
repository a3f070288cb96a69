package arm

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func TestClient(t *testing.T) {
	s := startSite(t, siteOptions{Executor: standIn(500 * time.Millisecond)})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := &Client{BaseURL: s.URL, Token: testToken, Subscription: sub, PollEvery: 100 * time.Millisecond}
	if _, err := c.PutGroup(ctx, "rg1", "westus2"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutGallery(ctx, "rg1", "gal", "westus2", "d"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutGalleryImage(ctx, "rg1", "gal", "def", "westus2", map[string]any{"osType": "Linux", "osState": "Generalized",
		"identifier": map[string]any{"publisher": "p", "offer": "o", "sku": "s"}}); err != nil {
		t.Fatal(err)
	}
	_, opURL, err := c.PutTemplate(ctx, "rg1", "t1", "", linuxTemplate("rg1", inline("echo hi")))
	if err != nil {
		t.Fatal(err)
	}
	if op, err := c.Wait(ctx, opURL, nil); err != nil || op.Status != "Succeeded" {
		t.Fatalf("submission %v %v", op, err)
	}
	runURL, err := c.Run(ctx, "rg1", "t1")
	if err != nil {
		t.Fatal(err)
	}
	logs, err := c.Logs(ctx, "rg1", "t1", "", true)
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(logs) // ends with the run
	logs.Close()
	if !strings.Contains(string(text), "==> Distributing") {
		t.Errorf("followed log:\n%s", text)
	}
	if op, err := c.Wait(ctx, runURL, nil); err != nil || op.Status != "Succeeded" {
		t.Fatalf("run %v %v", op, err)
	}
	list, err := c.ListTemplates(ctx, "")
	if err != nil || len(list) != 1 {
		t.Fatalf("templates %v %v", list, err)
	}
	imgs, err := c.ListImages(ctx, "rg1")
	if err != nil || len(imgs) != 1 {
		t.Fatalf("images %v %v", imgs, err)
	}
	if _, err := c.GetImage(ctx, "rg1", "out"); err != nil {
		t.Fatal(err)
	}
	outs, err := c.RunOutputs(ctx, "rg1", "t1")
	if err != nil || len(outs) != 1 {
		t.Fatalf("runOutputs %v %v", outs, err)
	}
	_, err = c.Cancel(ctx, "rg1", "t1")
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 409 {
		t.Errorf("cancel with nothing running: %v", err)
	}
	delURL, err := c.DeleteTemplate(ctx, "rg1", "t1")
	if err != nil {
		t.Fatal(err)
	}
	if op, err := c.Wait(ctx, delURL, nil); err != nil || op.Status != "Succeeded" {
		t.Fatalf("delete %v %v", op, err)
	}
	if u, err := c.DeleteTemplate(ctx, "rg1", "t1"); err != nil || u != "" {
		t.Errorf("deleting again: %q %v", u, err)
	}
	if _, err := c.GetTemplate(ctx, "rg1", "t1"); !errors.As(err, &apiErr) || apiErr.Code != "ResourceNotFound" {
		t.Errorf("GET after delete: %v", err)
	}
}
