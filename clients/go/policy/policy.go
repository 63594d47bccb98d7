// Package policy decides whether a subject may perform an action on a
// resource, from rules given in configuration (role-based and
// attribute-based access control).
//
// Semantics: deny by default. A request (subject, action, resource) is
// allowed when at least one rule
//   - names the resource (or the wildcard resource "*"),
//   - lists the action (or the wildcard action "*"),
//   - lists no roles, or one of its AnyRole is among the subject's roles,
//   - and for every attribute -> value pair of Require, the subject's
//     attribute of that name exists and equals the value exactly.
//
// Rules never deny; the order of rules does not change the decision, only
// the Reason reported. Comparisons are exact and case-sensitive. A Policy is
// immutable once built and safe for concurrent use; Authorize does not
// allocate when it allows.
package policy

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Wildcard, as a resource or an action, matches any.
const Wildcard = "*"

// Rule allows Actions on Resource to subjects holding one of AnyRole (any
// subject when AnyRole is empty) whose attributes match every entry of
// Require.
type Rule struct {
	Resource string            `yaml:"resource" json:"resource"`
	Actions  []string          `yaml:"actions" json:"actions"`
	AnyRole  []string          `yaml:"any_role,omitempty" json:"any_role,omitempty"`
	Require  map[string]string `yaml:"require,omitempty" json:"require,omitempty"`
}

// Subject is who asks: a user, their roles and their attributes (for
// example "country": "TH", "org_type": "OPERATOR", "org_id": "42").
type Subject struct {
	UserID string
	Roles  []string
	Attrs  map[string]string
}

// Decision is the answer of Authorize. Reason says which rule allowed the
// request or why none did; it is meant for logs and error messages and
// holds only names from the rules and the request.
type Decision struct {
	Allowed bool
	Reason  string
}

// ErrInvalidRule is returned (wrapped) by Validate and New.
var ErrInvalidRule = errors.New("policy: invalid rule")

// Validate checks one rule: a non-empty resource, at least one action, no
// empty action, role, attribute name or required value.
func (r Rule) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: resource %q: %s", ErrInvalidRule, r.Resource, fmt.Sprintf(format, args...))
	}
	switch {
	case strings.TrimSpace(r.Resource) == "":
		return bad("resource is empty")
	case len(r.Actions) == 0:
		return bad("no actions (use %q for all)", Wildcard)
	}
	for _, a := range r.Actions {
		if strings.TrimSpace(a) == "" {
			return bad("empty action")
		}
	}
	for _, role := range r.AnyRole {
		if strings.TrimSpace(role) == "" {
			return bad("empty role in any_role")
		}
	}
	for k, v := range r.Require {
		if strings.TrimSpace(k) == "" {
			return bad("empty attribute name in require")
		}
		if v == "" {
			return bad("attribute %q requires an empty value", k)
		}
	}
	return nil
}

// Validate checks every rule and returns the first error, naming the rule
// by its index.
func Validate(rules []Rule) error {
	for i, r := range rules {
		if err := r.Validate(); err != nil {
			return fmt.Errorf("rule %d: %w", i, err)
		}
	}
	return nil
}

// Policy is a validated, immutable set of rules. The zero Policy (and a nil
// *Policy) has no rules and denies everything.
type Policy struct {
	byResource map[string][]compiled
	wildcard   []compiled // rules on resource "*"
	n          int
}

type attr struct{ key, value string }

type compiled struct {
	index      int
	resource   string
	anyAction  bool
	actions    []string
	roles      []string
	require    []attr
	allowed    string // precomputed Reason when this rule allows
	wantRoles  string // precomputed deny reason: missing role
	ruleString string
}

// New validates rules and returns the policy they make. The rules are
// copied: changing them afterwards does not change the policy.
func New(rules []Rule) (*Policy, error) {
	if err := Validate(rules); err != nil {
		return nil, err
	}
	p := &Policy{byResource: make(map[string][]compiled), n: len(rules)}
	for i, r := range rules {
		c := compiled{index: i, resource: r.Resource, roles: append([]string(nil), r.AnyRole...)}
		for _, a := range r.Actions {
			if a == Wildcard {
				c.anyAction = true
			}
			c.actions = append(c.actions, a)
		}
		for _, k := range slices.Sorted(maps.Keys(r.Require)) {
			c.require = append(c.require, attr{k, r.Require[k]})
		}
		c.ruleString = fmt.Sprintf("rule %d (resource %q)", i, r.Resource)
		c.allowed = "allowed by " + c.ruleString
		c.wantRoles = fmt.Sprintf("%s needs one of the roles %q", c.ruleString, c.roles)
		if r.Resource == Wildcard {
			p.wildcard = append(p.wildcard, c)
		} else {
			p.byResource[r.Resource] = append(p.byResource[r.Resource], c)
		}
	}
	return p, nil
}

// Len returns the number of rules.
func (p *Policy) Len() int {
	if p == nil {
		return 0
	}
	return p.n
}

// Authorize decides whether sub may perform action on resource (see the
// package comment). It is pure: the same arguments give the same decision.
func (p *Policy) Authorize(sub Subject, action, resource string) Decision {
	if p == nil || p.n == 0 {
		return Decision{Reason: "denied: no rules (deny by default)"}
	}
	rules := p.byResource[resource]
	// Remember the first rule on this very resource that matched the action
	// but not the subject, to explain a denial. Wildcard-resource rules can
	// allow but are not used to explain.
	var near *compiled
	var nearAttr *attr
	for i := range rules {
		c := &rules[i]
		if !c.matchAction(action) {
			continue
		}
		if !c.matchRole(sub.Roles) {
			if near == nil {
				near = c
			}
			continue
		}
		if a := c.unmetAttr(sub.Attrs); a != nil {
			if nearAttr == nil {
				near, nearAttr = c, a
			}
			continue
		}
		return Decision{Allowed: true, Reason: c.allowed}
	}
	for i := range p.wildcard {
		c := &p.wildcard[i]
		if c.matchAction(action) && c.matchRole(sub.Roles) && c.unmetAttr(sub.Attrs) == nil {
			return Decision{Allowed: true, Reason: c.allowed}
		}
	}
	switch {
	case near != nil && nearAttr != nil:
		return Decision{Reason: fmt.Sprintf("denied: %s requires attribute %q = %q", near.ruleString, nearAttr.key, nearAttr.value)}
	case near != nil:
		return Decision{Reason: "denied: " + near.wantRoles}
	case len(rules) == 0:
		return Decision{Reason: fmt.Sprintf("denied: no rule for resource %q (deny by default)", resource)}
	default:
		return Decision{Reason: fmt.Sprintf("denied: no rule allows action %q on resource %q", action, resource)}
	}
}

func (c *compiled) matchAction(action string) bool {
	if c.anyAction {
		return true
	}
	for _, a := range c.actions {
		if a == action {
			return true
		}
	}
	return false
}

func (c *compiled) matchRole(have []string) bool {
	if len(c.roles) == 0 {
		return true
	}
	for _, want := range c.roles {
		for _, h := range have {
			if h == want {
				return true
			}
		}
	}
	return false
}

// unmetAttr returns the first required attribute sub does not have, or nil.
func (c *compiled) unmetAttr(attrs map[string]string) *attr {
	for i := range c.require {
		if v, ok := attrs[c.require[i].key]; !ok || v != c.require[i].value {
			return &c.require[i]
		}
	}
	return nil
}
