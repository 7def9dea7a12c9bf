"""The schema vocabulary and the fieldValidation map derived from it."""
from __future__ import annotations

import pytest

from securekube.api.fieldcheck import field_paths
from securekube.api.schema import (INT32, STRING, Array, Field, Map, Object, Scalar, array, field, free_form, map_of,
                                   obj, string, walk_objects)

LEAF = obj("example.Leaf", "A leaf.", field("value", STRING, "The value."))
ROOT = obj(
    "example.Root", "A root.",
    field("leaf", LEAF, "One leaf.", required=True),
    field("leaves", array(LEAF), "Many leaves."),
    field("grid", array(array(LEAF)), "Leaves in rows."),
    field("labels", map_of(STRING), "Free keys."),
    field("extra", map_of(array(STRING)), "Free keys with lists."),
    field("opaque", free_form("example.Opaque", "Anything."), "Not described."),
    field("count", INT32, "A number."),
)


def test_an_object_lists_its_required_fields_and_finds_fields_by_name():
    assert ROOT.required == ("leaf",)
    assert ROOT.field("leaves").type == Array(LEAF)
    with pytest.raises(KeyError):
        ROOT.field("missing")


@pytest.mark.parametrize("build, message", [
    (lambda: obj("x.Dup", "Dup.", field("a", STRING, "A."), field("a", INT32, "A again.")), "lists ['a'] twice"),
    (lambda: obj("x.Quiet", ""), "needs a description"),
    (lambda: Field("a", STRING, ""), "needs a name and a description"),
    (lambda: Object("x.Both", "Both.", (field("a", STRING, "A."),), free_form=True), "cannot also list fields"),
    (lambda: Scalar("text"), "unknown scalar type"),
    (lambda: Scalar(), "needs a type"),
    (lambda: Scalar("string", name="x.Named"), "needs a description"),
])
def test_malformed_descriptions_are_refused_when_built(build, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        build()


def test_string_with_values_is_an_enum():
    assert string("A", "B") == Scalar("string", enum=("A", "B"))
    assert string() == STRING


def test_walk_objects_visits_each_object_once_parent_first():
    names = [o.name for o in walk_objects(ROOT)]
    assert names == ["example.Root", "example.Leaf", "example.Opaque"]


def test_field_paths_lists_known_keys_at_every_described_depth():
    paths = field_paths(ROOT)
    assert paths[""] == frozenset({"leaf", "leaves", "grid", "labels", "extra", "opaque", "count"})
    assert paths["leaf"] == paths["leaves[]"] == paths["grid[][]"] == frozenset({"value"})
    # Free keys (maps) and free-form objects have no entry, so nothing inside them is reported.
    assert not {"labels", "extra", "opaque"} & set(paths)
    assert set(paths) == {"", "leaf", "leaves[]", "grid[][]"}


def test_a_described_object_inside_a_map_is_refused_rather_than_left_unchecked():
    bad = obj("example.Bad", "Bad.", field("byName", Map(array(LEAF)), "Leaves by name."))
    with pytest.raises(ValueError, match="byName: described objects inside a map cannot be checked"):
        field_paths(bad)
