package authhttp

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/sessiond/sessiond/api/openapi"
)

// TestOpenAPISchemasMatchTypes: the field names of each request and response
// schema of api/openapi/openapi.yaml are exactly the JSON names of the type
// the handler decodes or encodes.
func TestOpenAPISchemasMatchTypes(t *testing.T) {
	var spec struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]any `yaml:"properties"`
				Required   []string       `yaml:"required"`
			} `yaml:"schemas"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(openapi.Spec, &spec); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]any{
		"LoginRequest": loginBody{}, "SignupRequest": signupBody{}, "RefreshRequest": tokenBody{},
		"TokenPair": pairBody{}, "Error": apiError{}, "ExistingSession": conflictBody{},
		"Session": sessionBody{}, "PaserkKey": paserkKey{},
	} {
		s, ok := spec.Components.Schemas[name]
		if !ok {
			t.Errorf("schema %s: missing", name)
			continue
		}
		var doc []string
		for p := range s.Properties {
			doc = append(doc, p)
		}
		var got []string
		rt := reflect.TypeOf(v)
		for i := range rt.NumField() {
			tag, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
			if tag != "" && tag != "-" {
				got = append(got, tag)
			}
		}
		slices.Sort(doc)
		slices.Sort(got)
		if !slices.Equal(doc, got) {
			t.Errorf("schema %s: properties %v, %T's JSON names %v", name, doc, v, got)
		}
		for _, r := range s.Required {
			if !slices.Contains(got, r) {
				t.Errorf("schema %s: requires %q, which %T lacks", name, r, v)
			}
		}
	}
}
