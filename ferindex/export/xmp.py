"""XMP packets with expression keywords and MWG face regions, merged into what a sidecar
already holds.

Photo managers read keywords from `dc:subject` (flat), `lr:hierarchicalSubject` (Lightroom,
darktable, digiKam, Immich: `ferindex|expression|happiness`) and `digiKam:TagsList`, and face
rectangles from the Metadata Working Group's region schema (`mwg-rs:Regions`: a centre, width
and height relative to the photo as displayed, the person's name, type Face).

Re-running is idempotent and keeps everything else: before adding its own entries, the merge
removes the ones an earlier run added and nothing more. Ours are recognised by the `ferindex|`
and `ferindex/` prefixes, by a region description starting with "ferindex face", and, for the
flat `dc:subject` words (which carry no prefix), by the list kept in `ferindex:Keywords`.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

NS = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dc": "http://purl.org/dc/elements/1.1/",
    "lr": "http://ns.adobe.com/lightroom/1.0/",
    "digiKam": "http://www.digikam.org/ns/1.0/",
    "mwg-rs": "http://www.metadataworkinggroup.com/schemas/regions/",
    "stDim": "http://ns.adobe.com/xap/1.0/sType/Dimensions#",
    "stArea": "http://ns.adobe.com/xmp/sType/Area#",
    "ferindex": "http://ns.ferindex.example/xmp/1.0/",
}
for _prefix, _uri in NS.items():
    ET.register_namespace(_prefix, _uri)

ROOT = "ferindex"
REGION_MARK = "ferindex face"
PACKET_HEAD = '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
PACKET_TAIL = '\n<?xpacket end="w"?>\n'


class XmpError(ValueError):
    """An existing sidecar that is not XMP we can merge into (it is then left alone)."""


def q(name: str) -> str:
    """'dc:subject' -> '{http://purl.org/dc/elements/1.1/}subject'."""
    prefix, local = name.split(":")
    return f"{{{NS[prefix]}}}{local}"


@dataclass(frozen=True)
class Region:
    """One face: its box in pixels of the upright photo, shown label, person name (or None)."""

    face_id: int
    box: tuple[int, int, int, int]
    label: str
    person: str | None = None


@dataclass(frozen=True)
class PhotoTags:
    """What ferindex says about one photo."""

    width: int
    height: int
    regions: tuple[Region, ...]

    @property
    def expressions(self) -> list[str]:
        return sorted({r.label for r in self.regions})

    @property
    def people(self) -> list[str]:
        return sorted({r.person for r in self.regions if r.person})

    def hierarchical(self, sep: str) -> list[str]:
        """`ferindex|expression|happiness`, `ferindex|person|Alice` (sep "|" or "/")."""
        return ([sep.join((ROOT, "expression", e)) for e in self.expressions]
                + [sep.join((ROOT, "person", p)) for p in self.people])


def merge(existing: bytes | None, tags: PhotoTags) -> bytes:
    """The sidecar's new bytes: `existing` (None: no sidecar yet) with ferindex's earlier
    entries replaced by `tags`. XmpError if `existing` is not XMP."""
    root = _parse(existing)
    desc = _description(root)
    _remove_ours(root)
    flat = [w for w in tags.expressions + tags.people if w not in _bag_items(desc, "dc:subject")]
    _add_items(desc, "dc:subject", "rdf:Bag", flat)
    _add_items(desc, "lr:hierarchicalSubject", "rdf:Bag", tags.hierarchical("|"))
    _add_items(desc, "digiKam:TagsList", "rdf:Seq", tags.hierarchical("/"))
    _add_items(desc, "ferindex:Keywords", "rdf:Bag", flat)
    if tags.regions:
        _add_regions(desc, tags)
    ET.indent(root, space=" ")
    return (PACKET_HEAD + ET.tostring(root, encoding="unicode") + PACKET_TAIL).encode("utf-8")


def _parse(existing: bytes | None) -> ET.Element:
    if not existing:
        root = ET.Element(q("x:xmpmeta"))
        ET.SubElement(root, q("rdf:RDF"))
        return root
    try:
        root = ET.fromstring(existing)
    except ET.ParseError as e:
        raise XmpError(f"not readable XML ({e})") from None
    if root.tag == q("rdf:RDF"):  # a bare RDF document: wrap it
        meta = ET.Element(q("x:xmpmeta"))
        meta.append(root)
        root = meta
    if root.tag != q("x:xmpmeta") or root.find(q("rdf:RDF")) is None:
        raise XmpError("no x:xmpmeta/rdf:RDF element: not an XMP packet")
    return root


def _description(root: ET.Element) -> ET.Element:
    """The rdf:Description our properties go into (the first one, made if there is none)."""
    rdf = root.find(q("rdf:RDF"))
    desc = rdf.find(q("rdf:Description"))
    if desc is None:
        desc = ET.SubElement(rdf, q("rdf:Description"), {q("rdf:about"): ""})
    return desc


def _bag_items(desc: ET.Element, prop: str) -> list[str]:
    return [li.text or "" for li in desc.iterfind(f"{q(prop)}/*/{q('rdf:li')}")]


def _remove_ours(root: ET.Element) -> None:
    rdf = root.find(q("rdf:RDF"))
    for desc in rdf.iterfind(q("rdf:Description")):
        ours = set()
        for kw in desc.findall(q("ferindex:Keywords")):
            ours |= {li.text or "" for li in kw.iter(q("rdf:li"))}
            desc.remove(kw)
        for prop, test in (("dc:subject", lambda t: t in ours),
                           ("lr:hierarchicalSubject", lambda t: t.startswith(ROOT + "|")),
                           ("digiKam:TagsList", lambda t: t.startswith(ROOT + "/"))):
            for container in desc.iterfind(f"{q(prop)}/*"):
                for li in container.findall(q("rdf:li")):
                    if test(li.text or ""):
                        container.remove(li)
        for region_list in desc.iter(q("mwg-rs:RegionList")):
            for container in region_list:
                for li in container.findall(q("rdf:li")):
                    if (li.findtext(f".//{q('mwg-rs:Description')}") or "").startswith(REGION_MARK):
                        container.remove(li)
    _prune_empty(root)  # before adding: a second run then builds the same tree as the first


def _add_items(desc: ET.Element, prop: str, kind: str, items: Sequence[str]) -> None:
    if not items:
        return
    container = _child(_child(desc, prop), kind)
    for item in items:
        ET.SubElement(container, q("rdf:li")).text = item


def _add_regions(desc: ET.Element, tags: PhotoTags) -> None:
    regions = _child(desc, "mwg-rs:Regions", {q("rdf:parseType"): "Resource"})
    struct = regions.find(q("rdf:Description"))  # the other way RDF writes a struct
    holder = regions if struct is None else struct
    _child(holder, "mwg-rs:AppliedToDimensions", {
        q("stDim:w"): str(tags.width), q("stDim:h"): str(tags.height), q("stDim:unit"): "pixel"})
    bag = _child(_child(holder, "mwg-rs:RegionList"), "rdf:Bag")
    for r in tags.regions:
        li = ET.SubElement(bag, q("rdf:li"), {q("rdf:parseType"): "Resource"})
        ET.SubElement(li, q("mwg-rs:Type")).text = "Face"
        if r.person:
            ET.SubElement(li, q("mwg-rs:Name")).text = r.person
        ET.SubElement(li, q("mwg-rs:Description")).text = f"{REGION_MARK} {r.face_id}: {r.label}"
        x0, y0, x1, y1 = r.box
        ET.SubElement(li, q("mwg-rs:Area"), {
            q("stArea:x"): _unit((x0 + x1) / 2 / tags.width),
            q("stArea:y"): _unit((y0 + y1) / 2 / tags.height),
            q("stArea:w"): _unit((x1 - x0) / tags.width),
            q("stArea:h"): _unit((y1 - y0) / tags.height), q("stArea:unit"): "normalized"})


def _unit(v: float) -> str:
    return f"{min(max(v, 0.0), 1.0):.6f}"


def _child(parent: ET.Element, name: str, attrs: dict | None = None) -> ET.Element:
    """The first `name` child of `parent`, made (with `attrs`) if there is none."""
    el = parent.find(q(name))
    return ET.SubElement(parent, q(name), attrs or {}) if el is None else el


EMPTIABLE = ("rdf:Bag", "rdf:Seq", "dc:subject", "lr:hierarchicalSubject", "digiKam:TagsList",
             "mwg-rs:RegionList", "ferindex:Keywords")


def _prune_empty(root: ET.Element) -> None:
    """Drop what our removals emptied: bags without items, and region blocks without regions."""
    for parent in list(root.iter()):
        for child in list(parent):
            if child.tag == q("mwg-rs:Regions") and child.find(f".//{q('rdf:li')}") is None:
                parent.remove(child)
    changed = True
    while changed:
        changed = False
        for parent in list(root.iter()):
            for child in list(parent):
                if (child.tag in {q(t) for t in EMPTIABLE} and len(child) == 0
                        and not (child.text or "").strip()):
                    parent.remove(child)
                    changed = True
