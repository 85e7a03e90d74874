package render

import (
	"strconv"
	"strings"
	"text/template/parse"
)

// Per-subscriber email work is the greeting and the footer. Both are still
// rendered by their templates, but only as often as their output can
// change:
//
//   - The greeting depends on the name alone (and the status URL, which is
//     the same for every subscriber), so the text and HTML greetings are
//     cached by name in a bounded LRU per locale. The no-name greeting is
//     one entry; common names are others.
//   - The text footer is split at template level into its top-level nodes:
//     runs that do not read the subscriber's name or unsubscribe link are
//     executed once per status URL; the nodes that do are executed per
//     subscriber, and a bare {{.UnsubscribeURL}} is printed as text/template
//     would print a string, as is.
//   - The HTML footer is executed once per status URL with sentinel links
//     and filled with each subscriber's, when that is provably what
//     executing it would give (htmlfooter.go); else whole per subscriber.
//
// Which fields a template reads is found from its parse tree at New time;
// a template that passes its whole data on ({{template "x" .}}, {{.}},
// variables) is treated as reading everything and is executed per
// subscriber as before, so overridden templates stay correct.

// greetingCacheSize bounds the names whose greetings are kept per locale.
const greetingCacheSize = 4096

// Template names of the personal parts of an email.
const (
	tmplTextGreeting = "email.txt.greeting"
	tmplTextFooter   = "email.txt.footer"
	tmplHTMLGreeting = "email.html.greeting"
	tmplHTMLFooter   = "email.html.footer"
)

// personal is what the per-subscriber templates see.
type personal struct {
	Name           string
	UnsubscribeURL string
	PreferencesURL string
	StatusURL      string
	// SiteName is the site's name in the reader's language, from the site
	// file; "" when it gives none. The same for every reader of a locale.
	SiteName string
}

// Fields of personal that differ between subscribers of one message.
const (
	fieldName        = "Name"
	fieldUnsubscribe = "UnsubscribeURL"
	fieldPreferences = "PreferencesURL"
)

// greetingKey is what a greeting depends on when its templates read only
// .Name and .StatusURL.
type greetingKey struct {
	name, statusURL string
}

// greeting is a rendered greeting, in text and HTML.
type greeting struct {
	text, html string
}

// footerSeg is one top-level piece of the text footer.
type footerSeg struct {
	// tmpl names the template holding this piece's nodes.
	tmpl string
	// static pieces read neither the name nor the unsubscribe link.
	static bool
	// link marks a piece that is exactly {{.UnsubscribeURL}}, prefs one
	// that is exactly {{.PreferencesURL}}.
	link, prefs bool
}

// personalParts is a locale's plan for the per-subscriber parts, made once
// when the templates are parsed.
type personalParts struct {
	// greetings is nil when a greeting template may read more than the
	// name and status URL.
	greetings *lruOf[greetingKey, greeting]
	// footer is nil when the text footer cannot be split; frames holds the
	// output of its static pieces by status URL.
	footer []footerSeg
	frames *lruOf[string, []string]
	// htmlFrames holds the HTML footer cut where the links go, by status
	// URL and site name (see htmlfooter.go); nil when the footer reads more.
	htmlFrames *lruOf[htmlFrameKey, *htmlFrame]
}

// planPersonal inspects the parsed personal templates of ls.
func (ls *langSet) planPersonal() error {
	pp := &personalParts{}
	var textGreeting, htmlGreeting *parse.Tree
	if t := ls.text.Lookup(tmplTextGreeting); t != nil {
		textGreeting = t.Tree
	}
	if t := ls.html.Lookup(tmplHTMLGreeting); t != nil {
		htmlGreeting = t.Tree
	}
	if cacheableGreeting(textGreeting) && cacheableGreeting(htmlGreeting) {
		pp.greetings = newLRUOf[greetingKey, greeting](greetingCacheSize)
	}
	if t := ls.text.Lookup(tmplTextFooter); t != nil && t.Tree != nil {
		segs, err := ls.splitFooter(t.Tree)
		if err != nil {
			return err
		}
		if segs != nil {
			pp.footer = segs
			// One status URL per renderer in practice; a few for safety.
			pp.frames = newLRUOf[string, []string](8)
		}
	}
	if cacheableHTMLFooter(ls) {
		pp.htmlFrames = newLRUOf[htmlFrameKey, *htmlFrame](8)
	}
	ls.personal = pp
	return nil
}

// cacheableGreeting reports whether a greeting template reads nothing that
// differs between subscribers but the name.
func cacheableGreeting(tr *parse.Tree) bool {
	if tr == nil || tr.Root == nil {
		return false
	}
	fields, opaque := reads(tr.Root)
	return !opaque && !fields[fieldUnsubscribe] && !fields[fieldPreferences]
}

// splitFooter cuts the text footer's top-level nodes into runs of static
// nodes and single personal nodes, each added to ls.text as its own
// template. It returns nil when the footer declares variables, which a
// later piece could not see.
func (ls *langSet) splitFooter(tr *parse.Tree) ([]footerSeg, error) {
	var segs []footerSeg
	var run []parse.Node
	add := func(nodes []parse.Node, static bool) error {
		cp := tr.Copy()
		cp.Name = "personal:" + tmplTextFooter + ":" + strconv.Itoa(len(segs))
		list := &parse.ListNode{NodeType: parse.NodeList, Pos: nodes[0].Position()}
		for _, n := range nodes {
			list.Nodes = append(list.Nodes, n.Copy())
		}
		cp.Root = list
		if _, err := ls.text.AddParseTree(cp.Name, cp); err != nil {
			return err
		}
		segs = append(segs, footerSeg{tmpl: cp.Name, static: static, link: !static && isBareField(nodes[0], fieldUnsubscribe),
			prefs: !static && isBareField(nodes[0], fieldPreferences)})
		return nil
	}
	for _, n := range tr.Root.Nodes {
		if a, ok := n.(*parse.ActionNode); ok && len(a.Pipe.Decl) > 0 {
			return nil, nil
		}
		fields, opaque := reads(n)
		if !opaque && !fields[fieldName] && !fields[fieldUnsubscribe] && !fields[fieldPreferences] {
			run = append(run, n)
			continue
		}
		if len(run) > 0 {
			if err := add(run, true); err != nil {
				return nil, err
			}
			run = nil
		}
		if err := add([]parse.Node{n}, false); err != nil {
			return nil, err
		}
	}
	if len(run) > 0 {
		if err := add(run, true); err != nil {
			return nil, err
		}
	}
	return segs, nil
}

// isBareField reports whether n is {{.field}} and nothing else.
func isBareField(n parse.Node, field string) bool {
	a, ok := n.(*parse.ActionNode)
	if !ok || len(a.Pipe.Decl) > 0 || len(a.Pipe.Cmds) != 1 || len(a.Pipe.Cmds[0].Args) != 1 {
		return false
	}
	f, ok := a.Pipe.Cmds[0].Args[0].(*parse.FieldNode)
	return ok && len(f.Ident) == 1 && f.Ident[0] == field
}

// reads returns the names of the data fields a node reads, first element
// of each chain. opaque is true when the node may read data in ways not
// listed: the dot itself, variables, or a template called with data.
// Fields inside with and range count as the data's own: an over-estimate,
// which only costs caching.
func reads(n parse.Node) (fields map[string]bool, opaque bool) {
	fields = map[string]bool{}
	var walk func(parse.Node)
	walk = func(n parse.Node) {
		if opaque || n == nil {
			return
		}
		switch n := n.(type) {
		case *parse.ListNode:
			if n == nil {
				return
			}
			for _, c := range n.Nodes {
				walk(c)
			}
		case *parse.ActionNode:
			walk(n.Pipe)
		case *parse.PipeNode:
			if n == nil {
				return
			}
			for _, c := range n.Cmds {
				walk(c)
			}
		case *parse.CommandNode:
			for _, a := range n.Args {
				walk(a)
			}
		case *parse.FieldNode:
			fields[n.Ident[0]] = true
		case *parse.ChainNode:
			walk(n.Node)
		case *parse.IfNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.WithNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.RangeNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.TemplateNode:
			opaque = n.Pipe != nil
		case *parse.DotNode, *parse.VariableNode:
			opaque = true
		case *parse.TextNode, *parse.CommentNode, *parse.StringNode, *parse.NumberNode,
			*parse.BoolNode, *parse.NilNode, *parse.IdentifierNode,
			*parse.BreakNode, *parse.ContinueNode:
		default:
			opaque = true
		}
	}
	walk(n)
	return fields, opaque
}

// normalName folds the runs of white space in a name into single spaces,
// without allocating when there are none to fold.
func normalName(s string) string {
	prevSpace := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		space := c == ' '
		if c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r' || c >= 0x80 || (space && prevSpace) {
			return strings.Join(strings.Fields(s), " ")
		}
		prevSpace = space
	}
	if prevSpace && s != "" {
		return strings.Join(strings.Fields(s), " ")
	}
	return s
}

// greeting returns the text and HTML greetings for pd, from the cache when
// the greeting templates allow it.
func (ls *langSet) greeting(pd personal) (greeting, error) {
	pp := ls.personal
	key := greetingKey{name: pd.Name, statusURL: pd.StatusURL}
	if pp.greetings != nil {
		if g, ok := pp.greetings.get(key); ok {
			return g, nil
		}
		// The greeting must not see the links it was not keyed by.
		pd.UnsubscribeURL, pd.PreferencesURL = "", ""
	}
	var g greeting
	var err error
	if g.text, err = ls.execText(tmplTextGreeting, pd); err != nil {
		return greeting{}, err
	}
	if g.html, err = ls.execHTML(tmplHTMLGreeting, pd); err != nil {
		return greeting{}, err
	}
	if pp.greetings != nil {
		pp.greetings.put(key, g)
	}
	return g, nil
}

// writeTextFooter writes the text footer for pd to b: the static pieces
// from the frame for pd's status URL, the personal ones executed now.
func (ls *langSet) writeTextFooter(b *strings.Builder, pd personal) error {
	pp := ls.personal
	if pp.footer == nil {
		return ls.text.ExecuteTemplate(b, tmplTextFooter, pd)
	}
	frame, ok := pp.frames.get(pd.StatusURL)
	if !ok {
		frame = make([]string, len(pp.footer))
		static := personal{StatusURL: pd.StatusURL, SiteName: pd.SiteName}
		for i, seg := range pp.footer {
			if !seg.static {
				continue
			}
			var err error
			if frame[i], err = ls.execText(seg.tmpl, static); err != nil {
				return err
			}
		}
		pp.frames.put(pd.StatusURL, frame)
	}
	for i, seg := range pp.footer {
		switch {
		case seg.static:
			b.WriteString(frame[i])
		case seg.link:
			// What text/template prints for a string field: the string.
			b.WriteString(pd.UnsubscribeURL)
		case seg.prefs:
			b.WriteString(pd.PreferencesURL)
		default:
			if err := ls.text.ExecuteTemplate(b, seg.tmpl, pd); err != nil {
				return err
			}
		}
	}
	return nil
}
