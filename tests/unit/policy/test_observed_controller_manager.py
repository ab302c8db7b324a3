"""kube-controller-manager without per-controller credentials is observed, like the HPA it runs (DESIGN §3)."""

from webhook.actions.model import ActorClass
from webhook.policy.actors import ActorRules
from webhook.settings import Settings


def test_the_controller_manager_identity_is_observed_by_default():
    rules = ActorRules()
    # What the HPA writes as with --use-service-account-credentials=false.
    assert rules.classify("system:kube-controller-manager", ["system:authenticated"]) is ActorClass.OBSERVED
    # Only that exact user: a look-alike person is still a person.
    assert rules.classify("system:kube-controller-manager-x", []) is ActorClass.PERSON


def test_the_default_settings_carry_it_and_an_explicit_list_replaces_it():
    assert "system:kube-controller-manager" in Settings().observed_users
    narrowed = ActorRules(observed_users=("system:serviceaccount:kube-system:horizontal-pod-autoscaler",))
    assert narrowed.classify("system:kube-controller-manager", []) is ActorClass.PERSON
