package armtemplate

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// maxStringLen bounds strings built by expressions (format alignment,
// padLeft, replace) so a hostile template cannot exhaust memory.
const maxStringLen = 4 << 20

// formatComposite implements .NET composite formatting as used by ARM's
// format(): {index[,alignment][:formatString]}, with {{ and }} as escapes.
func formatComposite(f string, args []any) (string, error) {
	var b strings.Builder
	rs := []rune(f)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch r {
		case '}':
			if i+1 < len(rs) && rs[i+1] == '}' {
				b.WriteRune('}')
				i++
				continue
			}
			return "", fmt.Errorf("format string has a '}' at position %d without a matching '{' (write '}}' for a literal brace)", i)
		case '{':
			if i+1 < len(rs) && rs[i+1] == '{' {
				b.WriteRune('{')
				i++
				continue
			}
			end := -1
			for j := i + 1; j < len(rs); j++ {
				if rs[j] == '}' {
					end = j
					break
				}
			}
			if end < 0 {
				return "", fmt.Errorf("format string has a '{' at position %d that is never closed (write '{{' for a literal brace)", i)
			}
			item := string(rs[i+1 : end])
			s, err := formatItem(item, args)
			if err != nil {
				return "", err
			}
			b.WriteString(s)
			if b.Len() > maxStringLen {
				return "", fmt.Errorf("result is longer than %d bytes", maxStringLen)
			}
			i = end
		default:
			b.WriteRune(r)
		}
	}
	return b.String(), nil
}

func formatItem(item string, args []any) (string, error) {
	spec := ""
	if k := strings.IndexByte(item, ':'); k >= 0 {
		item, spec = item[:k], item[k+1:]
	}
	align := 0
	if k := strings.IndexByte(item, ','); k >= 0 {
		a, err := strconv.Atoi(strings.TrimSpace(item[k+1:]))
		if err != nil {
			return "", fmt.Errorf("format item {%s}: alignment must be an integer", item)
		}
		if a > 10000 || a < -10000 {
			return "", fmt.Errorf("format item {%s}: alignment %d is too large", item, a)
		}
		align, item = a, item[:k]
	}
	idx, err := strconv.Atoi(strings.TrimSpace(item))
	if err != nil || idx < 0 {
		return "", fmt.Errorf("format item {%s} must start with an argument number such as {0}", item)
	}
	if idx >= len(args) {
		return "", fmt.Errorf("format item {%d} refers to argument %d, but only %d values were given after the format string", idx, idx, len(args))
	}
	s, err := formatValue(args[idx], spec)
	if err != nil {
		return "", err
	}
	if n := len([]rune(s)); n < abs(align) {
		pad := strings.Repeat(" ", abs(align)-n)
		if align > 0 {
			s = pad + s
		} else {
			s += pad
		}
	}
	return s, nil
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// formatValue renders one argument as .NET would with an optional format
// specifier. Only the specifiers templates use in practice are supported.
func formatValue(v any, spec string) (string, error) {
	switch v := v.(type) {
	case int64:
		if spec == "" {
			return strconv.FormatInt(v, 10), nil
		}
		return formatInt(v, spec)
	case float64:
		return strconv.FormatFloat(v, 'G', -1, 64), nil
	}
	return scalarString(v), nil
}

func formatInt(v int64, spec string) (string, error) {
	letter := spec[0]
	precision := -1
	if len(spec) > 1 {
		p, err := strconv.Atoi(spec[1:])
		if err == nil && p >= 0 && p <= 99 {
			precision = p
		} else {
			letter = 0 // a custom format such as "000"
		}
	}
	neg := v < 0
	mag := strconv.FormatUint(absU(v), 10)
	sign := ""
	if neg {
		sign = "-"
	}
	switch letter {
	case 'D', 'd':
		if precision > len(mag) {
			mag = strings.Repeat("0", precision-len(mag)) + mag
		}
		return sign + mag, nil
	case 'X', 'x':
		h := strconv.FormatUint(uint64(v), 16)
		if letter == 'X' {
			h = strings.ToUpper(h)
		}
		if precision > len(h) {
			h = strings.Repeat("0", precision-len(h)) + h
		}
		return h, nil
	case 'N', 'n', 'F', 'f':
		if precision < 0 {
			precision = 2
		}
		if letter == 'N' || letter == 'n' {
			mag = groupThousands(mag)
		}
		if precision > 0 {
			mag += "." + strings.Repeat("0", precision)
		}
		return sign + mag, nil
	case 'G', 'g':
		return strconv.FormatInt(v, 10), nil
	}
	// Custom numeric format: only zero-padding ("000") and grouping ("#,##0").
	if strings.Trim(spec, "0#,") == "" {
		zeros := strings.Count(spec, "0")
		if len(mag) < zeros {
			mag = strings.Repeat("0", zeros-len(mag)) + mag
		}
		if strings.Contains(spec, ",") {
			mag = groupThousands(mag)
		}
		return sign + mag, nil
	}
	return "", fmt.Errorf("numeric format '%s' is not supported (use D, D<n>, X, N, F, G or a pattern like 000)", spec)
}

func absU(v int64) uint64 {
	if v < 0 {
		return uint64(-(v + 1)) + 1
	}
	return uint64(v)
}

func groupThousands(digits string) string {
	var b strings.Builder
	for i, r := range digits {
		if i > 0 && (len(digits)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// scalarString converts a value to text the way ARM does when a string is
// needed: booleans as .NET prints them, containers as compact JSON.
func scalarString(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case bool:
		if v {
			return "True"
		}
		return "False"
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return strconv.FormatFloat(v, 'G', -1, 64)
	}
	return compactJSON(v)
}

// formatDateTime renders t with a .NET standard or custom date format.
func formatDateTime(t time.Time, f string) (string, error) {
	switch f {
	case "":
		f = "yyyyMMddTHHmmssZ"
	case "o", "O":
		f = "yyyy-MM-ddTHH:mm:ss.fffffffK"
	case "s":
		f = "yyyy-MM-ddTHH:mm:ss"
	case "u":
		f = "yyyy-MM-dd HH:mm:ssZ"
	case "d":
		f = "M/d/yyyy"
	case "D":
		f = "dddd, MMMM d, yyyy"
	case "t":
		f = "h:mm tt"
	case "T":
		f = "h:mm:ss tt"
	case "g":
		f = "M/d/yyyy h:mm tt"
	case "G":
		f = "M/d/yyyy h:mm:ss tt"
	case "f":
		f = "dddd, MMMM d, yyyy h:mm tt"
	case "F":
		f = "dddd, MMMM d, yyyy h:mm:ss tt"
	case "r", "R":
		f = "ddd, dd MMM yyyy HH':'mm':'ss 'GMT'"
	case "M", "m":
		f = "MMMM d"
	case "Y", "y":
		f = "MMMM yyyy"
	}
	if len([]rune(f)) == 1 {
		return "", fmt.Errorf("date format '%s' is not a supported .NET format", f)
	}
	rs := []rune(f)
	var b strings.Builder
	for i := 0; i < len(rs); {
		r := rs[i]
		n := 1
		for i+n < len(rs) && rs[i+n] == r {
			n++
		}
		switch r {
		case 'y':
			y := t.Year()
			switch {
			case n == 1:
				b.WriteString(strconv.Itoa(y % 100))
			case n == 2:
				fmt.Fprintf(&b, "%02d", y%100)
			default:
				fmt.Fprintf(&b, "%0*d", n, y)
			}
		case 'M':
			switch n {
			case 1:
				b.WriteString(strconv.Itoa(int(t.Month())))
			case 2:
				fmt.Fprintf(&b, "%02d", int(t.Month()))
			case 3:
				b.WriteString(t.Month().String()[:3])
			default:
				b.WriteString(t.Month().String())
			}
		case 'd':
			switch n {
			case 1:
				b.WriteString(strconv.Itoa(t.Day()))
			case 2:
				fmt.Fprintf(&b, "%02d", t.Day())
			case 3:
				b.WriteString(t.Weekday().String()[:3])
			default:
				b.WriteString(t.Weekday().String())
			}
		case 'H':
			writePadded(&b, t.Hour(), n)
		case 'h':
			h := t.Hour() % 12
			if h == 0 {
				h = 12
			}
			writePadded(&b, h, n)
		case 'm':
			writePadded(&b, t.Minute(), n)
		case 's':
			writePadded(&b, t.Second(), n)
		case 'f', 'F':
			if n > 7 {
				return "", fmt.Errorf("date format '%s' has more than 7 fraction digits", f)
			}
			frac := fmt.Sprintf("%09d", t.Nanosecond())[:n]
			if r == 'F' {
				frac = strings.TrimRight(frac, "0")
			}
			b.WriteString(frac)
		case 't':
			ampm := "AM"
			if t.Hour() >= 12 {
				ampm = "PM"
			}
			if n == 1 {
				ampm = ampm[:1]
			}
			b.WriteString(ampm)
		case 'K':
			if t.Location() == time.UTC {
				b.WriteString("Z")
			} else {
				b.WriteString(t.Format("-07:00"))
			}
		case 'z':
			switch n {
			case 1:
				b.WriteString(strings.TrimPrefix(t.Format("-07"), "+0"))
			case 2:
				b.WriteString(t.Format("-07"))
			default:
				b.WriteString(t.Format("-07:00"))
			}
		case '\'', '"':
			j := i + 1
			for j < len(rs) && rs[j] != r {
				j++
			}
			if j >= len(rs) {
				return "", fmt.Errorf("date format '%s' has an unclosed quote", f)
			}
			b.WriteString(string(rs[i+1 : j]))
			i = j + 1
			continue
		case '\\':
			if i+1 < len(rs) {
				b.WriteRune(rs[i+1])
			}
			i += 2
			continue
		default:
			for k := 0; k < n; k++ {
				b.WriteRune(r)
			}
		}
		i += n
	}
	return b.String(), nil
}

func writePadded(b *strings.Builder, v, n int) {
	if n >= 2 {
		fmt.Fprintf(b, "%02d", v)
		return
	}
	b.WriteString(strconv.Itoa(v))
}
