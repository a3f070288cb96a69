package console

import "testing"

func TestHighlightJSON(t *testing.T) {
	cases := []struct{ in, want string }{
		{`{"a": 1}`, `<span class="j-p">{</span><span class="j-key">&#34;a&#34;</span><span class="j-p">:</span> <span class="j-num">1</span><span class="j-p">}</span>`},
		{`["x", -2.5e3, true, false, null]`, `<span class="j-p">[</span><span class="j-str">&#34;x&#34;</span><span class="j-p">,</span> <span class="j-num">-2.5e3</span><span class="j-p">,</span> <span class="j-lit">true</span><span class="j-p">,</span> <span class="j-lit">false</span><span class="j-p">,</span> <span class="j-lit">null</span><span class="j-p">]</span>`},
		// Markup in strings is text; escaped quotes stay inside the string.
		{`"</span><script>alert(1)</script> \" x"`, `<span class="j-str">&#34;&lt;/span&gt;&lt;script&gt;alert(1)&lt;/script&gt; \&#34; x&#34;</span>`},
		// Text that is not JSON is escaped, multi-byte characters whole.
		{`<b>é</b>`, `&lt;b&gt;é&lt;/b&gt;`},
		{`"unterminated`, `<span class="j-str">&#34;unterminated</span>`},
	}
	for _, c := range cases {
		if got := string(highlightJSON(c.in)); got != c.want {
			t.Errorf("highlightJSON(%q)\n got %s\nwant %s", c.in, got, c.want)
		}
	}
}
