package httpstream

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
)

func TestCopy(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name    string
		r       io.Reader
		want    string
		wantErr error
	}{
		{"to the end", strings.NewReader("line 1\nline 2\n"), "line 1\nline 2\n", nil},
		{"one byte at a time", iotest.OneByteReader(strings.NewReader("abc")), "abc", nil},
		{"a broken read", io.MultiReader(strings.NewReader("part"), iotest.ErrReader(boom)), "part", boom},
	}
	for _, tc := range tests {
		rec := httptest.NewRecorder()
		w := &StatusWriter{ResponseWriter: rec}
		err := Copy(w, tc.r)
		if !errors.Is(err, tc.wantErr) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.wantErr)
		}
		if got := rec.Body.String(); got != tc.want {
			t.Errorf("%s: wrote %q, want %q", tc.name, got, tc.want)
		}
		if !rec.Flushed {
			t.Errorf("%s: never flushed", tc.name)
		}
		if w.Status != http.StatusOK {
			t.Errorf("%s: status %d, want 200 (set by the first write)", tc.name, w.Status)
		}
	}
}

func TestStatusWriterKeepsFirstStatus(t *testing.T) {
	w := &StatusWriter{ResponseWriter: httptest.NewRecorder()}
	w.WriteHeader(http.StatusNotFound)
	w.Write([]byte("x"))
	if w.Status != http.StatusNotFound {
		t.Errorf("status %d, want 404", w.Status)
	}
}
