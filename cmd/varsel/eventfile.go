package main

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/varsel/varsel/notifier"
)

// readEvent reads an event file (or stdin for "-") and validates it. A
// file named *.toml is TOML, so a letter's paragraphs can be written as
// multi-line strings; it is converted to the JSON the service takes. The
// JSON is returned with the event for publishing.
func readEvent(name string, stdin io.Reader) (raw []byte, ev *notifier.Event, err error) {
	raw, err = readInput(name, stdin)
	if err != nil {
		return nil, nil, err
	}
	if strings.EqualFold(filepath.Ext(name), ".toml") {
		if raw, err = tomlToJSON(raw); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	ev, err = notifier.DecodeEvent(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("%s is not a valid event: %w", name, err)
	}
	return raw, ev, nil
}

// tomlToJSON converts a TOML event to JSON with the same fields. TOML
// times must carry their offset: a local time would silently become UTC.
func tomlToJSON(src []byte) ([]byte, error) {
	var doc map[string]any
	if _, err := toml.Decode(string(src), &doc); err != nil {
		return nil, fmt.Errorf("not valid TOML: %w", err)
	}
	if err := checkTOMLTimes("", doc); err != nil {
		return nil, err
	}
	return json.Marshal(doc)
}

func checkTOMLTimes(path string, v any) error {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			p := k
			if path != "" {
				p = path + "." + k
			}
			if err := checkTOMLTimes(p, e); err != nil {
				return err
			}
		}
	case []map[string]any:
		for i, e := range v {
			if err := checkTOMLTimes(fmt.Sprintf("%s[%d]", path, i), e); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range v {
			if err := checkTOMLTimes(fmt.Sprintf("%s[%d]", path, i), e); err != nil {
				return err
			}
		}
	case time.Time:
		switch v.Location().String() {
		case "datetime-local", "date-local", "time-local":
			return fmt.Errorf("%s: %s has no UTC offset; write it with one, for example %s", path,
				v.Format("2006-01-02T15:04:05"), v.Format("2006-01-02T15:04:05")+"+02:00")
		}
	}
	return nil
}
