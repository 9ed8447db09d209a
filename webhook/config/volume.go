package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"strings"
)

// Volume is where the directories of a file:/// storage URL live, so that the
// reconciler can give each namespace PersistentVolumes rooted at its own directory
// (VOLUME_SOURCE):
//
//	nfs://SERVER/EXPORT/PATH                 an NFS export (read-only PVs say readOnly)
//	hostpath:///PATH?read_only_root=/RO      a node directory (single-node and test clusters),
//	                                         with a read-only view of it (a read-only bind
//	                                         mount the node's administrator makes) for the
//	                                         restore sources: hostPath has no read-only flag
type Volume struct {
	// Kind is VolumeNFS or VolumeHostPath.
	Kind string
	// Server is the NFS server (host or IP).
	Server string
	// Root is the directory (on the server, or the node) the storage URL's directory is.
	Root string
	// ReadOnlyRoot is hostPath's read-only view of Root.
	ReadOnlyRoot string
}

// Volume kinds.
const (
	VolumeNFS      = "nfs"
	VolumeHostPath = "hostpath"
)

// ParseVolume reads VOLUME_SOURCE.
func ParseVolume(raw string) (Volume, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Volume{}, errors.New("not a URL")
	}
	if u.User != nil || u.Fragment != "" || u.Opaque != "" {
		return Volume{}, errors.New("takes no credentials, fragment or opaque part")
	}
	clean := func(p string) bool {
		return path.IsAbs(p) && p == path.Clean(p) && p != "/" && !strings.ContainsAny(p, ",\n")
	}
	q := u.Query()
	switch u.Scheme {
	case VolumeNFS:
		if len(q) > 0 {
			return Volume{}, errors.New("nfs:// takes no options")
		}
		host := u.Hostname()
		if host == "" || u.Port() != "" || (net.ParseIP(host) == nil && !validHost(host)) {
			return Volume{}, errors.New("nfs:// needs a server host name or IP address, without a port: nfs://SERVER/EXPORT/PATH")
		}
		if !clean(u.Path) {
			return Volume{}, errors.New("nfs:// needs a clean absolute export path other than /")
		}
		return Volume{Kind: VolumeNFS, Server: host, Root: u.Path}, nil
	case VolumeHostPath:
		if u.Host != "" {
			return Volume{}, errors.New("hostpath URLs take no host, write hostpath:///PATH?read_only_root=/PATH")
		}
		for k := range q {
			if k != "read_only_root" {
				return Volume{}, fmt.Errorf("unknown option %q for hostpath (known: read_only_root)", k)
			}
		}
		ro := q.Get("read_only_root")
		if !clean(u.Path) || !clean(ro) {
			return Volume{}, errors.New("hostpath needs clean absolute directories other than /: hostpath:///PATH?read_only_root=/PATH")
		}
		if ro == u.Path {
			return Volume{}, errors.New("read_only_root must be a read-only view of the directory, not the directory itself")
		}
		return Volume{Kind: VolumeHostPath, Root: u.Path, ReadOnlyRoot: ro}, nil
	}
	return Volume{}, fmt.Errorf("scheme %q is not nfs or hostpath", u.Scheme)
}

func validHost(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, l := range strings.Split(h, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
