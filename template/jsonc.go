package template

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// SyntaxError is malformed JSON, located by line and column (1-based).
type SyntaxError struct {
	Line, Column int
	Msg          string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("line %d, column %d: %s", e.Line, e.Column, e.Msg)
}

// DecodeJSON parses a template file. Like ARM's parser, it accepts // and /* */
// comments and trailing commas. Numbers are kept as json.Number so integers
// stay exact.
func DecodeJSON(data []byte) (any, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // UTF-8 BOM, common in files saved on Windows
	clean, err := stripComments(data)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(clean))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, locate(clean, dec, err)
	}
	rest := clean[dec.InputOffset():]
	if trimmed := bytes.TrimLeft(rest, " \t\r\n"); len(trimmed) > 0 {
		line, col := position(clean, len(clean)-len(trimmed))
		return nil, &SyntaxError{Line: line, Column: col, Msg: "unexpected content after the end of the JSON document"}
	}
	return v, nil
}

func locate(data []byte, dec *json.Decoder, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	offset := int(dec.InputOffset())
	switch {
	case errors.As(err, &se):
		offset = int(se.Offset)
	case errors.As(err, &te):
		offset = int(te.Offset)
	case errors.Is(err, io.EOF):
		return &SyntaxError{Line: 1, Column: 1, Msg: "the file is empty"}
	case errors.Is(err, io.ErrUnexpectedEOF):
		line, col := position(data, len(data))
		return &SyntaxError{Line: line, Column: col, Msg: "unexpected end of file: a bracket or quote is not closed"}
	}
	// Go reports the offset after the offending byte.
	at := max(offset-1, 0)
	line, col := position(data, at)
	msg := err.Error()
	if at < len(data) && data[at] == '<' {
		msg += " (an unsubstituted placeholder such as <region>?)"
	}
	if at < len(data) && data[at] == '\'' {
		msg += " (JSON strings need double quotes)"
	}
	return &SyntaxError{Line: line, Column: col, Msg: msg}
}

func position(data []byte, offset int) (line, col int) {
	offset = min(offset, len(data))
	line = 1 + bytes.Count(data[:offset], []byte("\n"))
	col = offset - bytes.LastIndexByte(data[:offset], '\n')
	return line, col
}

// stripComments blanks out comments and trailing commas (keeping newlines,
// so positions hold).
func stripComments(data []byte) ([]byte, error) {
	if !bytes.Contains(data, []byte("/")) && !bytes.Contains(data, []byte(",")) {
		return data, nil
	}
	out := bytes.Clone(data)
	inString := false
	lastComma := -1 // position of a comma not yet followed by a value
	for i := 0; i < len(out); i++ {
		c := out[i]
		if !inString && c != ' ' && c != '\t' && c != '\r' && c != '\n' && c != '/' {
			if (c == '}' || c == ']') && lastComma >= 0 {
				out[lastComma] = ' '
			}
			lastComma = -1
			if c == ',' {
				lastComma = i
				continue
			}
		}
		switch {
		case inString:
			if c == '\\' {
				i++
			} else if c == '"' {
				inString = false
			}
		case c == '"':
			inString = true
		case c == '/' && i+1 < len(out) && out[i+1] == '/':
			for ; i < len(out) && out[i] != '\n'; i++ {
				out[i] = ' '
			}
		case c == '/' && i+1 < len(out) && out[i+1] == '*':
			start := i
			end := bytes.Index(out[i+2:], []byte("*/"))
			if end < 0 {
				line, col := position(data, start)
				return nil, &SyntaxError{Line: line, Column: col, Msg: "comment is not closed with */"}
			}
			for j := i; j < i+2+end+2; j++ {
				if out[j] != '\n' {
					out[j] = ' '
				}
			}
			i += 2 + end + 1
		}
	}
	return out, nil
}
