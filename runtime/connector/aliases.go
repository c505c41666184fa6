package connector

import (
	"fmt"

	"gopkg.in/yaml.v3"
)

// maxExpandedNodes bounds the size of a spec once its aliases are expanded. Everything that
// walks a spec (mappings, JSON Schemas, JSONPath lookups) follows aliases, so a few lines
// that alias aliases ("billion laughs": ten lines of ten aliases each are 10^10 nodes) would
// take the loader, and with hot reload the server, hours and gigabytes. Real specs are a few
// hundred nodes.
const maxExpandedNodes = 100_000

// checkAliases refuses a document whose aliases expand past maxExpandedNodes or refer to a
// node that contains them (`&a { b: *a }`, which yaml.v3 accepts and which would recurse
// without end, overflowing the stack: a crash no recover catches). It returns "" for a
// document that is fine.
func checkAliases(doc *yaml.Node) string {
	s := sizer{limit: maxExpandedNodes, memo: map[*yaml.Node]int{}}
	n := s.size(doc)
	switch {
	case s.cycle != nil:
		return fmt.Sprintf("alias *%s at line %d refers to a value that contains it", s.cycle.Value, s.cycle.Line)
	case n > s.limit:
		return fmt.Sprintf("the document holds more than %d values once its aliases are expanded", s.limit)
	}
	return ""
}

// sizer counts the nodes of a document with every alias expanded, stopping once the count
// passes limit. Each distinct node is sized once, so counting is cheap whatever the
// expansion.
type sizer struct {
	limit int
	memo  map[*yaml.Node]int // -1 while a node is being sized
	cycle *yaml.Node         // the first alias found inside what it names
}

func (s *sizer) size(n *yaml.Node) int {
	if n == nil {
		return 0
	}
	if v, ok := s.memo[n]; ok {
		return v // -1, for a node being sized, only reaches an alias (see below)
	}
	s.memo[n] = -1
	size := 1
	if n.Kind == yaml.AliasNode {
		if s.memo[n.Alias] == -1 {
			if s.cycle == nil {
				s.cycle = n
			}
			size = s.limit + 1
		} else {
			size = s.size(n.Alias)
		}
	} else {
		for _, c := range n.Content {
			size += s.size(c)
			if size > s.limit || s.cycle != nil {
				size = s.limit + 1
				break
			}
		}
	}
	size = min(size, s.limit+1)
	s.memo[n] = size
	return size
}
