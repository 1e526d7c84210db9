// Command etcd is upstream etcd's server, built from its Go module.
//
// go.etcd.io/etcd/server/v3 cannot be `go install`ed directly (its go.mod has relative
// replace directives), so this module wraps its entry point. tools/testbed/build.py pins the
// version with `go get`; see scheduler/testbed/versions.py.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
