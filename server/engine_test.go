package server

import "testing"

func TestLayerCacheOptIn(t *testing.T) {
	tests := []struct {
		tags map[string]string
		want bool
	}{
		{nil, false},
		{map[string]string{"goldsmith.layerCache": "enabled"}, true},
		{map[string]string{"Goldsmith.LayerCache": "Enabled"}, true},
		{map[string]string{"goldsmith.layerCache": "disabled"}, false},
		{map[string]string{"layerCache": "enabled"}, false},
	}
	for _, tt := range tests {
		if got := layerCacheOptIn(tt.tags); got != tt.want {
			t.Errorf("%v: %v, want %v", tt.tags, got, tt.want)
		}
	}
}
