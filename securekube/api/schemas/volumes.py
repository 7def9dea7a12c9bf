"""core/v1 Volume: the volume sources a pod can name.

The sources Pod Security's restricted profile allows (and hostPath, which it refuses) are described
field by field; the legacy in-tree storage plugins keep upstream's names but are not described
inside (free-form), so a pod that uses one is not refused as having unknown fields.
"""
from __future__ import annotations

from securekube.api.schema import (BOOLEAN, INT32, INT64, QUANTITY, STRING, Object, array, field, free_form, map_of,
                                   obj, string)
from securekube.api.schemas.meta import LABEL_SELECTOR

CORE = "io.k8s.api.core.v1"

LOCAL_OBJECT_REFERENCE = obj(
    f"{CORE}.LocalObjectReference", "A reference to an object of a known kind in the same namespace.",
    field("name", STRING, "Name of the referenced object."),
)

KEY_TO_PATH = obj(
    f"{CORE}.KeyToPath", "Maps one key of a ConfigMap or Secret to a file in the volume.",
    field("key", STRING, "Which key of the source to write.", required=True),
    field("mode", INT32, "Permission bits of the file; defaults to the volume's defaultMode."),
    field("path", STRING, "Relative path of the file the key is written to.", required=True),
    field("user", INT64, "User ID that owns the file."),
)

OBJECT_FIELD_SELECTOR = obj(
    f"{CORE}.ObjectFieldSelector", "Selects a field of the pod, such as metadata.name or status.podIP.",
    field("apiVersion", STRING, "Schema version the field path is written in; defaults to v1."),
    field("fieldPath", STRING, "The field to expose, such as metadata.name.", required=True),
)

RESOURCE_FIELD_SELECTOR = obj(
    f"{CORE}.ResourceFieldSelector", "Selects a container's resource request or limit, such as limits.cpu.",
    field("containerName", STRING, "Container whose resources are read; required for volumes."),
    field("divisor", QUANTITY, "Unit the value is divided by before it is exposed; defaults to 1."),
    field("resource", STRING, "Which request or limit to read, such as limits.memory.", required=True),
)

EMPTY_DIR = obj(
    f"{CORE}.EmptyDirVolumeSource", "A scratch directory that lives as long as the pod.",
    field("medium", STRING, "Storage medium: empty for the node's disk, Memory for tmpfs."),
    field("mode", INT32, "Permission bits of the directory."),
    field("sizeLimit", QUANTITY, "Most space the directory may use."),
)

HOST_PATH = obj(
    f"{CORE}.HostPathVolumeSource", "A file or directory of the node mounted into the pod; a way out of isolation.",
    field("path", STRING, "Path on the node.", required=True),
    field("type", string("", "BlockDevice", "CharDevice", "Directory", "DirectoryOrCreate", "File", "FileOrCreate",
                         "Socket"),
          "What must exist at the path before the mount."),
)

CONFIG_MAP_VOLUME = obj(
    f"{CORE}.ConfigMapVolumeSource", "Files made from the keys of a ConfigMap.",
    field("defaultMode", INT32, "Permission bits of the files unless an item sets its own."),
    field("defaultUser", INT64, "User ID that owns the files unless an item sets its own."),
    field("items", array(KEY_TO_PATH), "Keys to project and where; all keys when empty."),
    field("name", STRING, "Name of the ConfigMap."),
    field("optional", BOOLEAN, "When true, a missing ConfigMap or key is not an error."),
)

SECRET_VOLUME = obj(
    f"{CORE}.SecretVolumeSource", "Files made from the keys of a Secret.",
    field("defaultMode", INT32, "Permission bits of the files unless an item sets its own."),
    field("defaultUser", INT64, "User ID that owns the files unless an item sets its own."),
    field("items", array(KEY_TO_PATH), "Keys to project and where; all keys when empty."),
    field("optional", BOOLEAN, "When true, a missing Secret or key is not an error."),
    field("secretName", STRING, "Which Secret to read, in the pod's namespace."),
)

DOWNWARD_API_FILE = obj(
    f"{CORE}.DownwardAPIVolumeFile", "One file holding a field of the pod or a container resource.",
    field("fieldRef", OBJECT_FIELD_SELECTOR, "The pod field to write."),
    field("mode", INT32, "Permission bits of the file."),
    field("path", STRING, "Relative path of the file.", required=True),
    field("resourceFieldRef", RESOURCE_FIELD_SELECTOR, "The container resource to write."),
    field("user", INT64, "User ID that owns the file."),
)

DOWNWARD_API_VOLUME = obj(
    f"{CORE}.DownwardAPIVolumeSource", "Files holding information about the pod itself.",
    field("defaultMode", INT32, "Permission bits of the files unless an item sets its own."),
    field("defaultUser", INT64, "User ID that owns the files unless an item sets its own."),
    field("items", array(DOWNWARD_API_FILE), "The files to write."),
)

PVC_VOLUME = obj(
    f"{CORE}.PersistentVolumeClaimVolumeSource", "The volume bound to a PersistentVolumeClaim.",
    field("claimName", STRING, "Name of the claim in the pod's namespace.", required=True),
    field("readOnly", BOOLEAN, "When true, the volume is mounted read-only."),
)

IMAGE_VOLUME = obj(
    f"{CORE}.ImageVolumeSource", "The content of an OCI image or artifact, mounted read-only.",
    field("pullPolicy", string("Always", "IfNotPresent", "Never"), "When the image is pulled."),
    field("reference", STRING, "Image reference, as in a container's image."),
)

CSI_VOLUME = obj(
    f"{CORE}.CSIVolumeSource", "A volume provided inline by a CSI driver.",
    field("driver", STRING, "Name of the CSI driver.", required=True),
    field("fsType", STRING, "Filesystem type to mount, such as ext4."),
    field("nodePublishSecretRef", LOCAL_OBJECT_REFERENCE, "Secret handed to the driver when it mounts."),
    field("readOnly", BOOLEAN, "When true, the volume is mounted read-only."),
    field("volumeAttributes", map_of(STRING), "Driver-specific settings."),
)

SECRET_PROJECTION = obj(
    f"{CORE}.SecretProjection", "The keys of a Secret projected into a projected volume.",
    field("items", array(KEY_TO_PATH), "Keys to project and where; all keys when empty."),
    field("name", STRING, "Name of the Secret."),
    field("optional", BOOLEAN, "When true, a missing Secret or key is not an error."),
)

CONFIG_MAP_PROJECTION = obj(
    f"{CORE}.ConfigMapProjection", "The keys of a ConfigMap projected into a projected volume.",
    field("items", array(KEY_TO_PATH), "Keys to project and where; all keys when empty."),
    field("name", STRING, "Name of the ConfigMap."),
    field("optional", BOOLEAN, "When true, a missing ConfigMap or key is not an error."),
)

DOWNWARD_API_PROJECTION = obj(
    f"{CORE}.DownwardAPIProjection", "Pod information projected into a projected volume.",
    field("items", array(DOWNWARD_API_FILE), "The files to write."),
)

SERVICE_ACCOUNT_TOKEN_PROJECTION = obj(
    f"{CORE}.ServiceAccountTokenProjection",
    "A short-lived token of the pod's service account, renewed by the kubelet.",
    field("audience", STRING, "Audience the token is minted for; defaults to the API server's."),
    field("expirationSeconds", INT64, "Requested lifetime of the token."),
    field("path", STRING, "Relative path of the token file.", required=True),
    field("user", INT64, "User ID that owns the file."),
)

CLUSTER_TRUST_BUNDLE_PROJECTION = obj(
    f"{CORE}.ClusterTrustBundleProjection", "Certificates from ClusterTrustBundles written to one file.",
    field("labelSelector", LABEL_SELECTOR, "Selects the bundles of the signer by label."),
    field("name", STRING, "A single bundle, by name."),
    field("optional", BOOLEAN, "When true, a missing bundle writes an empty file instead of failing."),
    field("path", STRING, "Relative path of the file.", required=True),
    field("signerName", STRING, "Selects the bundles of this signer."),
    field("user", INT64, "User ID that owns the file."),
)

POD_CERTIFICATE_PROJECTION = obj(
    f"{CORE}.PodCertificateProjection", "A key and certificate issued to the pod through a PodCertificateRequest.",
    field("certificateChainPath", STRING, "Relative path of the certificate chain file."),
    field("credentialBundlePath", STRING, "Relative path of a file holding the key and the chain together."),
    field("keyPath", STRING, "Relative path of the private key file."),
    field("keyType", STRING, "Algorithm of the generated key, such as ECDSAP256.", required=True),
    field("maxExpirationSeconds", INT32, "Longest certificate lifetime the pod accepts."),
    field("signerName", STRING, "Signer that issues the certificate.", required=True),
    field("user", INT64, "User ID that owns the files."),
    field("userAnnotations", map_of(STRING), "Annotations copied to the request for the signer."),
)

VOLUME_PROJECTION = obj(
    f"{CORE}.VolumeProjection", "One source of a projected volume; exactly one field is set.",
    field("clusterTrustBundle", CLUSTER_TRUST_BUNDLE_PROJECTION, "Certificates of a signer's trust bundles."),
    field("configMap", CONFIG_MAP_PROJECTION, "Keys of a ConfigMap."),
    field("downwardAPI", DOWNWARD_API_PROJECTION, "Information about the pod."),
    field("podCertificate", POD_CERTIFICATE_PROJECTION, "A key and certificate for the pod."),
    field("secret", SECRET_PROJECTION, "Keys of a Secret."),
    field("serviceAccountToken", SERVICE_ACCOUNT_TOKEN_PROJECTION, "A token of the pod's service account."),
)

PROJECTED_VOLUME = obj(
    f"{CORE}.ProjectedVolumeSource", "Several sources merged into one directory.",
    field("defaultMode", INT32, "Permission bits of the files unless a source sets its own."),
    field("defaultUser", INT64, "User ID that owns the files unless a source sets its own."),
    field("sources", array(VOLUME_PROJECTION), "The sources to merge."),
)


def _legacy(type_name: str, what: str) -> Object:
    return free_form(f"{CORE}.{type_name}", f"{what}; not described here, as this lab does not mount it.")


VOLUME = obj(
    f"{CORE}.Volume", "A named volume that containers of the pod can mount; exactly one source is set.",
    field("awsElasticBlockStore", _legacy("AWSElasticBlockStoreVolumeSource", "An AWS EBS disk"),
          "Deprecated in-tree AWS EBS disk."),
    field("azureDisk", _legacy("AzureDiskVolumeSource", "An Azure data disk"), "Deprecated in-tree Azure disk."),
    field("azureFile", _legacy("AzureFileVolumeSource", "An Azure File share"), "Deprecated in-tree Azure File share."),
    field("cephfs", _legacy("CephFSVolumeSource", "A CephFS mount"), "Deprecated in-tree CephFS mount."),
    field("cinder", _legacy("CinderVolumeSource", "An OpenStack Cinder volume"), "Deprecated in-tree Cinder volume."),
    field("configMap", CONFIG_MAP_VOLUME, "Files from a ConfigMap."),
    field("csi", CSI_VOLUME, "A volume from a CSI driver."),
    field("downwardAPI", DOWNWARD_API_VOLUME, "Files describing the pod."),
    field("emptyDir", EMPTY_DIR, "A scratch directory that lives as long as the pod."),
    field("ephemeral", _legacy("EphemeralVolumeSource", "A volume from a per-pod PersistentVolumeClaim template"),
          "A volume whose claim is created and deleted with the pod."),
    field("fc", _legacy("FCVolumeSource", "A Fibre Channel disk"), "Fibre Channel disk."),
    field("flexVolume", _legacy("FlexVolumeSource", "A FlexVolume driver volume"),
          "Deprecated FlexVolume driver volume."),
    field("flocker", _legacy("FlockerVolumeSource", "A Flocker dataset"), "Deprecated Flocker dataset."),
    field("gcePersistentDisk", _legacy("GCEPersistentDiskVolumeSource", "A GCE persistent disk"),
          "Deprecated in-tree GCE persistent disk."),
    field("gitRepo", _legacy("GitRepoVolumeSource", "A git repository cloned into a directory"),
          "Deprecated git checkout; use an init container instead."),
    field("glusterfs", _legacy("GlusterfsVolumeSource", "A GlusterFS mount"), "Deprecated GlusterFS mount."),
    field("hostPath", HOST_PATH, "A path on the node; refused by Pod Security baseline and restricted."),
    field("image", IMAGE_VOLUME, "The content of an OCI image."),
    field("iscsi", _legacy("ISCSIVolumeSource", "An iSCSI disk"), "iSCSI disk."),
    field("name", STRING, "Name of the volume, which volume mounts refer to.", required=True),
    field("nfs", _legacy("NFSVolumeSource", "An NFS export"), "NFS export."),
    field("persistentVolumeClaim", PVC_VOLUME, "The volume bound to a claim."),
    field("photonPersistentDisk", _legacy("PhotonPersistentDiskVolumeSource", "A Photon Controller disk"),
          "Deprecated Photon Controller disk."),
    field("portworxVolume", _legacy("PortworxVolumeSource", "A Portworx volume"),
          "Deprecated in-tree Portworx volume."),
    field("projected", PROJECTED_VOLUME, "Several sources merged into one directory."),
    field("quobyte", _legacy("QuobyteVolumeSource", "A Quobyte mount"), "Deprecated Quobyte mount."),
    field("rbd", _legacy("RBDVolumeSource", "A Ceph RBD disk"), "Deprecated Ceph RBD disk."),
    field("scaleIO", _legacy("ScaleIOVolumeSource", "A ScaleIO volume"), "Deprecated ScaleIO volume."),
    field("secret", SECRET_VOLUME, "Files from a Secret."),
    field("storageos", _legacy("StorageOSVolumeSource", "A StorageOS volume"), "Deprecated StorageOS volume."),
    field("vsphereVolume", _legacy("VsphereVirtualDiskVolumeSource", "A vSphere disk"),
          "Deprecated in-tree vSphere disk."),
)
