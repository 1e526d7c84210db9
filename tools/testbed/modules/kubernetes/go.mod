// Wrapper for building kube-apiserver, kube-controller-manager, kube-scheduler and kubectl.
// k8s.io/kubernetes requires its staging modules (k8s.io/api, ...) at v0.0.0, so it cannot be
// `go install`ed; tools/testbed/build.py copies this module to the build cache, adds a
// `replace k8s.io/<staging> => k8s.io/<staging> v0.<minor>.<patch>` for every staging module
// listed in k8s.io/kubernetes's own go.mod, requires k8s.io/kubernetes at the pinned version
// and runs `go build k8s.io/kubernetes/cmd/<name>` there. Versions live only in
// scheduler/testbed/versions.py.
module isthmus.local/testbed/kubernetes

go 1.26
