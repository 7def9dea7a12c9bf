# Pods do not share the node's namespaces or mount its filesystem.
#
# hostPID lets a container see and signal every process on the node (and read their
# environment through /proc), hostIPC reach the node's shared memory, hostNetwork bind the
# node's addresses and reach services listening on localhost (the kubelet's, for one); a
# hostPath volume hands over the node's files, /var/lib/kubelet and the container runtime's
# socket included. Each is a well-trodden path from a pod to the node.
#
# Checked when a pod is created (these fields cannot change afterwards).
package securekube.admission.no_host_access

# Each rule body starts with equality tests on the request that OPA's rule index can use, so a
# request a rule cannot apply to costs it next to nothing; refs go straight to input.

deny contains msg if {
	input.request.kind.kind == "Pod"
	input.request.operation == "CREATE"
	object.get(input.request, "subResource", "") == ""
	some field in ["hostNetwork", "hostPID", "hostIPC"]
	input.request.object.spec[field] == true
	msg := sprintf("%s is not allowed: the pod would share the node's %s", [field, shared[field]])
}

shared := {"hostNetwork": "network namespace", "hostPID": "process namespace", "hostIPC": "IPC namespace"}

deny contains msg if {
	input.request.kind.kind == "Pod"
	input.request.operation == "CREATE"
	object.get(input.request, "subResource", "") == ""
	some volume in object.get(input.request.object.spec, "volumes", [])
	volume.hostPath != null
	msg := sprintf("volume %q mounts the node's path %q: hostPath volumes are not allowed", [volume.name, object.get(volume.hostPath, "path", "")])
}
