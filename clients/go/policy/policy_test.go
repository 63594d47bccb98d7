package policy

import (
	"errors"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// seedYAML is the shape of the policy section of the daemon's config.
const seedYAML = `
- resource: th-customs
  actions: [read, submit]
  any_role: [customs-agent]
  require: {country: TH}
- resource: th-customs
  actions: [approve]
  any_role: [customs-supervisor, customs-agent]
  require: {country: TH, org_type: OPERATOR}
- resource: shipments
  actions: ["*"]
  any_role: [shipper, admin]
- resource: public-docs
  actions: [read]
- resource: "*"
  actions: ["*"]
  any_role: [superuser]
`

func seedPolicy(t testing.TB) *Policy {
	t.Helper()
	var rules []Rule
	if err := yaml.Unmarshal([]byte(seedYAML), &rules); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	p, err := New(rules)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

func TestAuthorize(t *testing.T) {
	p := seedPolicy(t)
	thAgent := Subject{UserID: "1", Roles: []string{"customs-agent"}, Attrs: map[string]string{"country": "TH", "org_type": "CUSTOMER"}}
	sgAgent := Subject{UserID: "2", Roles: []string{"customs-agent"}, Attrs: map[string]string{"country": "SG"}}
	thOperatorAgent := Subject{UserID: "3", Roles: []string{"viewer", "customs-agent"}, Attrs: map[string]string{"country": "TH", "org_type": "OPERATOR"}}
	noAttrs := Subject{UserID: "4", Roles: []string{"customs-agent"}}
	shipper := Subject{UserID: "5", Roles: []string{"shipper"}}
	nobody := Subject{UserID: "6"}
	root := Subject{UserID: "7", Roles: []string{"superuser"}}
	lowerTH := Subject{UserID: "8", Roles: []string{"customs-agent"}, Attrs: map[string]string{"country": "th"}}
	caseRole := Subject{UserID: "9", Roles: []string{"Customs-Agent"}, Attrs: map[string]string{"country": "TH"}}

	for _, tc := range []struct {
		name             string
		sub              Subject
		action, resource string
		want             bool
		reason           string // substring of Reason
	}{
		{"TH agent reads th-customs", thAgent, "read", "th-customs", true, "rule 0"},
		{"TH agent submits", thAgent, "submit", "th-customs", true, "rule 0"},
		{"SG agent denied by country", sgAgent, "read", "th-customs", false, `"country" = "TH"`},
		{"agent without attributes denied", noAttrs, "read", "th-customs", false, `"country" = "TH"`},
		{"country match is case-sensitive", lowerTH, "read", "th-customs", false, `"country" = "TH"`},
		{"role match is case-sensitive", caseRole, "read", "th-customs", false, "needs one of the roles"},
		{"shipper lacks role for th-customs", shipper, "read", "th-customs", false, "needs one of the roles"},
		{"approve needs OPERATOR", thAgent, "approve", "th-customs", false, `"org_type" = "OPERATOR"`},
		{"approve by TH operator agent", thOperatorAgent, "approve", "th-customs", true, "rule 1"},
		{"unlisted action denied", thOperatorAgent, "delete", "th-customs", false, `no rule allows action "delete"`},
		{"wildcard action", shipper, "cancel", "shipments", true, "rule 2"},
		{"wildcard action still needs the role", thAgent, "read", "shipments", false, "needs one of the roles"},
		{"rule without roles or attrs allows anyone", nobody, "read", "public-docs", true, "rule 3"},
		{"but only its actions", nobody, "write", "public-docs", false, "no rule allows"},
		{"unknown resource denied", thAgent, "read", "sg-customs", false, `no rule for resource "sg-customs"`},
		{"wildcard resource for superuser", root, "anything", "sg-customs", true, "rule 4"},
		{"empty action on known resource", thAgent, "", "th-customs", false, "no rule allows"},
		{"empty resource", thAgent, "read", "", false, "no rule"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := p.Authorize(tc.sub, tc.action, tc.resource)
			if got.Allowed != tc.want || !strings.Contains(got.Reason, tc.reason) {
				t.Errorf("Authorize(%v, %q, %q) = %+v; want allowed=%v with reason containing %q",
					tc.sub, tc.action, tc.resource, got, tc.want, tc.reason)
			}
		})
	}
}

func TestDenyByDefault(t *testing.T) {
	sub := Subject{UserID: "1", Roles: []string{"superuser"}, Attrs: map[string]string{"country": "TH"}}
	for name, p := range map[string]*Policy{"nil": nil, "zero": {}, "empty": mustNew(t, nil)} {
		if d := p.Authorize(sub, "read", "th-customs"); d.Allowed || d.Reason == "" {
			t.Errorf("%s policy: got %+v, want denied with a reason", name, d)
		}
	}
}

func mustNew(t *testing.T, rules []Rule) *Policy {
	t.Helper()
	p, err := New(rules)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

func TestNewCopiesRules(t *testing.T) {
	rules := []Rule{{Resource: "r", Actions: []string{"read"}, AnyRole: []string{"a"}, Require: map[string]string{"country": "TH"}}}
	p := mustNew(t, rules)
	rules[0].Actions[0] = "write"
	rules[0].AnyRole[0] = "b"
	rules[0].Require["country"] = "SG"
	sub := Subject{Roles: []string{"a"}, Attrs: map[string]string{"country": "TH"}}
	if d := p.Authorize(sub, "read", "r"); !d.Allowed {
		t.Errorf("after editing the rules slice: got %+v, want the original rule to still allow", d)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		rule Rule
	}{
		{"empty resource", Rule{Actions: []string{"read"}}},
		{"blank resource", Rule{Resource: "  ", Actions: []string{"read"}}},
		{"no actions", Rule{Resource: "r"}},
		{"empty action", Rule{Resource: "r", Actions: []string{"read", ""}}},
		{"empty role", Rule{Resource: "r", Actions: []string{"read"}, AnyRole: []string{""}}},
		{"empty attribute name", Rule{Resource: "r", Actions: []string{"read"}, Require: map[string]string{"": "x"}}},
		{"empty required value", Rule{Resource: "r", Actions: []string{"read"}, Require: map[string]string{"country": ""}}},
	} {
		good := Rule{Resource: "ok", Actions: []string{"*"}}
		_, err := New([]Rule{good, tc.rule})
		if !errors.Is(err, ErrInvalidRule) || !strings.Contains(err.Error(), "rule 1") {
			t.Errorf("%s: New got %v, want ErrInvalidRule naming rule 1", tc.name, err)
		}
	}
	if err := Validate([]Rule{{Resource: "r", Actions: []string{"*"}}}); err != nil {
		t.Errorf("Validate(valid) = %v", err)
	}
}

func TestReasonIsDeterministic(t *testing.T) {
	p := mustNew(t, []Rule{{Resource: "r", Actions: []string{"read"}, Require: map[string]string{"a": "1", "b": "2", "c": "3", "d": "4"}}})
	first := p.Authorize(Subject{}, "read", "r").Reason
	for range 50 {
		if got := p.Authorize(Subject{}, "read", "r").Reason; got != first {
			t.Fatalf("reason changed between calls: %q then %q", first, got)
		}
	}
	if !strings.Contains(first, `"a" = "1"`) {
		t.Errorf("reason %q: want the first attribute in name order", first)
	}
}

func TestAllowDoesNotAllocate(t *testing.T) {
	p := seedPolicy(t)
	sub := Subject{UserID: "3", Roles: []string{"viewer", "customs-agent"}, Attrs: map[string]string{"country": "TH", "org_type": "OPERATOR"}}
	if n := testing.AllocsPerRun(100, func() { _ = p.Authorize(sub, "approve", "th-customs") }); n != 0 {
		t.Errorf("allowed Authorize: %v allocations per call, want 0", n)
	}
}

func BenchmarkAuthorizeAllow(b *testing.B) {
	p := seedPolicy(b)
	sub := Subject{UserID: "3", Roles: []string{"viewer", "customs-agent"}, Attrs: map[string]string{"country": "TH", "org_type": "OPERATOR"}}
	b.ReportAllocs()
	for b.Loop() {
		if !p.Authorize(sub, "approve", "th-customs").Allowed {
			b.Fatal("denied")
		}
	}
}

func BenchmarkAuthorizeDeny(b *testing.B) {
	p := seedPolicy(b)
	sub := Subject{UserID: "2", Roles: []string{"customs-agent"}, Attrs: map[string]string{"country": "SG"}}
	b.ReportAllocs()
	for b.Loop() {
		if p.Authorize(sub, "read", "th-customs").Allowed {
			b.Fatal("allowed")
		}
	}
}

func BenchmarkAuthorizeManyRules(b *testing.B) {
	rules := make([]Rule, 0, 1000)
	for i := range 1000 {
		rules = append(rules, Rule{Resource: "res-" + strings.Repeat("x", i%7) + string(rune('a'+i%26)), Actions: []string{"read", "write"}, AnyRole: []string{"r1", "r2"}})
	}
	rules = append(rules, Rule{Resource: "target", Actions: []string{"read"}, AnyRole: []string{"agent"}, Require: map[string]string{"country": "TH"}})
	p, err := New(rules)
	if err != nil {
		b.Fatal(err)
	}
	sub := Subject{Roles: []string{"agent"}, Attrs: map[string]string{"country": "TH"}}
	b.ReportAllocs()
	for b.Loop() {
		if !p.Authorize(sub, "read", "target").Allowed {
			b.Fatal("denied")
		}
	}
}
