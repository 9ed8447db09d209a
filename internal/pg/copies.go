package pg

import "strings"

// Why a restored copy (initrestore's, verify's scratch database) leaves an archive
// entry out.
const (
	// NoEventTriggers: only a superuser creates an event trigger, and the administrator
	// must not: its function is restored as the application role's (--no-owner), which
	// could then rewrite it to run with the rights of whoever runs DDL in the database.
	NoEventTriggers = "only a superuser creates an event trigger, and its function would be the application role's to rewrite: not restored"
	// NoReplication: publications and subscriptions are production's logical
	// replication; a restored copy is neither a source nor a replica of anything (a
	// publication FOR ALL TABLES, or any subscription, also needs a superuser).
	NoReplication = "production's logical replication; a restored copy publishes and subscribes to nothing: not restored"
)

// LeftOutOfCopies tells whether the archive entry described as pg_restore --list
// describes it after the dump id and OIDs ("EVENT TRIGGER - audita postgres",
// "COMMENT - PUBLICATION cdc postgres", "PUBLICATION TABLE public cdc clientes
// postgres") is one a restored copy leaves out, and why: event triggers, publications
// and subscriptions, with their comments and security labels.
func LeftOutOfCopies(entry string) (why string, left bool) {
	object := entry // what a comment or a security label is on, or the entry itself
	for _, on := range []string{"COMMENT - ", "SECURITY LABEL - "} {
		if rest, ok := strings.CutPrefix(entry, on); ok {
			object = rest
		}
	}
	switch {
	case strings.HasPrefix(object, "EVENT TRIGGER "):
		return NoEventTriggers, true
	case strings.HasPrefix(object, "PUBLICATION "), strings.HasPrefix(object, "SUBSCRIPTION "):
		return NoReplication, true
	}
	return "", false
}

// ListEntry is how pg_restore --list describes e after its dump id and OIDs, enough
// for LeftOutOfCopies: its type, schema ("-" for none) and tag.
func ListEntry(e TOCEntry) string {
	ns := e.Namespace
	if ns == "" {
		ns = "-"
	}
	return e.Desc + " " + ns + " " + e.Tag + " "
}
