// Wrapper around etcd's server. tools/testbed/build.py copies this module to the build cache,
// adds the pinned require with `go get` and builds it there: versions live only in
// scheduler/testbed/versions.py.
module isthmus.local/testbed/etcd

go 1.26
