from securekube.authn.interfaces import UserInfo
from securekube.authz.interfaces import Attributes, Verdict
from securekube.authz.privileged import PrivilegedGroupAuthorizer


def attrs(*groups: str) -> Attributes:
    return Attributes(user=UserInfo("u", groups=groups), verb="delete", resource_request=True, resource="nodes")


def test_masters_allowed_everyone_else_abstains():
    authorizer = PrivilegedGroupAuthorizer()
    assert authorizer.authorize(attrs("system:masters")).verdict is Verdict.ALLOW
    assert authorizer.authorize(attrs("securekube:cluster-admins", "system:authenticated")).verdict is Verdict.NO_OPINION
