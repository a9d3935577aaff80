"""The VOC reader: real layout, boxes/classes/difficult, and hostile or broken files refused."""

import pytest

pytest.importorskip("defusedxml")

from prunebench.data.voc import CLASSES, MAX_XML_BYTES, load_voc, parse_annotation  # noqa: E402
from prunebench.errors import DataError  # noqa: E402
from tests.detection.toy_voc import write_toy_voc  # noqa: E402

GOOD = (
    "<annotation><size><width>50</width><height>40</height></size>"
    "<object><name>dog</name><difficult>1</difficult><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>10</xmax><ymax>20</ymax></bndbox></object>"
    "<object><name>unicorn</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object>"
    "<object><name>cat</name><bndbox><xmin>5</xmin><ymin>5</ymin><xmax>50</xmax><ymax>40</ymax></bndbox></object>"
    "</annotation>"
)


def test_boxes_classes_and_difficult(tmp_path):
    f = tmp_path / "a.xml"
    f.write_text(GOOD)
    w, h, boxes, labels, difficult = parse_annotation(f)
    assert (w, h) == (50, 40)
    assert boxes == [(0, 1, 10, 20), (4, 4, 50, 40)]  # 1-based inclusive corners -> continuous boxes
    assert labels == [CLASSES.index("dog") + 1, CLASSES.index("cat") + 1]  # unknown names skipped
    assert difficult == [True, False]


@pytest.mark.parametrize("doc", [
    # billion laughs: entity expansion
    '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xxxxxxxxxx"><!ENTITY y "&x;&x;&x;&x;&x;&x;&x;&x;">]><annotation>&y;</annotation>',
    # an external entity reading a local file
    '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><annotation><size><width>&x;</width></size></annotation>',
    # an external DTD
    '<?xml version="1.0"?><!DOCTYPE a SYSTEM "http://example.invalid/a.dtd"><annotation/>',
])  # fmt: skip
def test_entities_and_external_references_are_refused(tmp_path, doc):
    f = tmp_path / "evil.xml"
    f.write_text(doc)
    with pytest.raises(DataError, match="refused"):
        parse_annotation(f)


@pytest.mark.parametrize("doc,msg", [
    ("<annotation><size><width>50", "not valid XML"),
    ("<annotation/>", "no <size>"),
    ("<annotation><size><width>x</width><height>4</height></size></annotation>", "must be a number"),
    ("<annotation><size><width>10</width><height>10</height></size><object><name>cat</name><bndbox><xmin>1</xmin>"
     "<ymin>1</ymin><xmax>11</xmax><ymax>5</ymax></bndbox></object></annotation>", "outside"),
])  # fmt: skip
def test_broken_annotations_are_one_line_errors(tmp_path, doc, msg):
    f = tmp_path / "bad.xml"
    f.write_text(doc)
    with pytest.raises(DataError, match=msg):
        parse_annotation(f)


def test_oversized_annotation_is_refused_unread(tmp_path):
    f = tmp_path / "big.xml"
    f.write_bytes(b"<annotation>" + b" " * MAX_XML_BYTES + b"</annotation>")
    with pytest.raises(DataError, match="limit"):
        parse_annotation(f)


def test_devkit_layout_and_missing_data(tmp_path):
    write_toy_voc(tmp_path, n_train=4, n_test=4)
    train, test = load_voc("voc2007", "train", tmp_path), load_voc("voc2007", "test", tmp_path)
    assert len(train) == 4 and len(test) == 4 and train.digest != test.digest
    assert test.images[0].difficult.any()  # the toy marks a faint shape difficult in every 4th test image
    with pytest.raises(DataError, match="VOC2012 not found"):
        load_voc("voc0712", "train", tmp_path)


def test_image_whose_header_disagrees_with_its_annotation(tmp_path):
    torchvision = pytest.importorskip("torchvision")  # noqa: F841
    from PIL import Image

    from prunebench.data.voc import read_image

    write_toy_voc(tmp_path, n_train=1, n_test=1)
    im = load_voc("voc2007", "train", tmp_path).images[0]
    assert tuple(read_image(im).shape) == (3, im.height, im.width)
    Image.new("RGB", (20000, 20)).save(im.path)  # a wide image: refused from its header
    with pytest.raises(DataError, match="annotation says"):
        read_image(im)
