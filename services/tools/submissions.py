"""Build submission XML the way ODK Collect does: fill the served XForm's primary instance.

Used by the sample loader and the tests, so both exercise the real form's structure.
"""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET

from defusedxml import ElementTree as SafeET

_H = "{http://www.w3.org/1999/xhtml}"
_XF = "{http://www.w3.org/2002/xforms}"


def _strip_namespace(element: ET.Element) -> None:
    for node in element.iter():
        node.tag = node.tag.rsplit("}", 1)[-1]


def fill_instance(xform: bytes, answers: dict[str, str], instance_id: str, deprecated_id: str | None = None) -> bytes:
    """A submission for ``xform``: each leaf named in ``answers`` gets its value; unknown names raise."""
    root = SafeET.fromstring(xform)
    instance = root.find(f"{_H}head/{_XF}model/{_XF}instance")
    if instance is None or len(instance) == 0:
        raise ValueError("XForm has no primary instance")
    data = copy.deepcopy(instance[0])
    _strip_namespace(data)
    leaves = {node.tag: node for node in data.iter() if len(node) == 0}
    unknown = set(answers) - set(leaves)
    if unknown:
        raise KeyError(f"not in the form: {sorted(unknown)}")
    for name, value in answers.items():
        leaves[name].text = value
    meta = data.find("meta")
    if meta is None:
        meta = ET.SubElement(data, "meta")
    id_node = meta.find("instanceID")
    if id_node is None:
        id_node = ET.SubElement(meta, "instanceID")
    id_node.text = instance_id
    if deprecated_id:
        ET.SubElement(meta, "deprecatedID").text = deprecated_id
    return ET.tostring(data, encoding="utf-8", xml_declaration=True)


def multipart(xml: bytes) -> dict[str, tuple[str, bytes, str]]:
    """The ``files=`` argument for an httpx/TestClient POST, as Collect names the part."""
    return {"xml_submission_file": ("submission.xml", xml, "text/xml")}
