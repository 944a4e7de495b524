"""Detection analysis: COCO box mAP per column with pycocotools, its paired bootstrap, and how
often a variant changes what an image's confident detections say.

mAP is not a mean over images, so its interval comes from `paired_bootstrap_metric`: images are
resampled and each column's mAP recomputed on the multiset. Running COCOeval per resample would
take minutes per variant; `ResampledAP` instead takes COCOeval's own per-image matching (evalImgs:
which detection matched which object at each IoU threshold, ignore flags, max 100 per image) once
per column and redoes only COCOeval's `accumulate` with per-image weights (how often the resample
drew each image). With every weight 1 it is COCOeval's accumulate, step for step, which the tests
check on the full set; an image drawn twice counts as two adjacent copies of it.

Mask AP (a detector with a mask head): COCOeval(segm) on the stored RLE masks of the columns
that have them (the model's own post-processing); its evalImgs have the same shape, so the same
ResampledAP gives its bootstrap interval and paired delta.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from functools import cached_property

import numpy as np

from sysnoise.analysis import statistics as st
from sysnoise.analysis.bootstrap import CachedMetric, percentile_interval
from sysnoise.analysis.metric import MAP
from sysnoise.analysis.stats import VariantStats
from sysnoise.postprocess.detection import decode_masks

SEGM_NOT_APPLICABLE = (
    "post-processing other than the model's own: Mask R-CNN's masks come from its mask head run "
    "on the model's own post-processed boxes, so segm AP is computed for the reference, "
    "pre-processing and inference columns only"
)
RESAMPLES = 500  # bootstrap resamples per variant (an accumulate over all categories each; see ResampledAP)
CONFIDENT = 0.5  # detections at or above this score are what an application shows
MATCH_IOU = 0.5
STATS = (
    "map",
    "ap50",
    "ap75",
    "ap_small",
    "ap_medium",
    "ap_large",
    "ar1",
    "ar10",
    "ar100",
    "ar_small",
    "ar_medium",
    "ar_large",
)  # COCOeval.stats, in order


def ground_truth(coco: dict):
    from pycocotools.coco import COCO

    gt = COCO()
    gt.dataset = coco
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    return gt


def detections_json(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, image_ids: list[int]) -> list[dict]:
    """Stored detections ((n, D, 4) x1 y1 x2 y2, scores, labels with -1 padding) as a COCO results
    list: [{image_id, category_id, bbox [x, y, w, h], score}], the format COCO tools read."""
    out = []
    for image_id, b, s, c in zip(image_ids, boxes, scores, labels):
        for box, score, label in zip(b[c >= 0], s[c >= 0], c[c >= 0]):
            x1, y1, x2, y2 = (float(v) for v in box)
            out.append(
                {
                    "image_id": int(image_id),
                    "category_id": int(label),
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": float(score),
                }
            )
    return out


def segmentations_json(blobs: list[bytes], scores: np.ndarray, labels: np.ndarray, image_ids: list[int]) -> list[dict]:
    """Stored masks (one encode_masks byte string per image, its detections in order) with their
    scores and labels as a COCO segm results list: [{image_id, category_id, segmentation (RLE), score}]."""
    out = []
    for image_id, blob, s, c in zip(image_ids, blobs, scores, labels):
        rles = decode_masks(blob)
        if len(rles) != int((c >= 0).sum()):
            raise ValueError(f"image {image_id}: {len(rles)} masks stored for {int((c >= 0).sum())} detections")
        for rle, score, label in zip(rles, s[c >= 0], c[c >= 0]):
            out.append(
                {"image_id": int(image_id), "category_id": int(label), "segmentation": rle, "score": float(score)}
            )
    return out


def _has_segmentation(segmentation) -> bool:
    """A polygon list (each polygon an even number >= 6 of coordinates) or an RLE {size, counts}."""
    if isinstance(segmentation, dict):
        size = segmentation.get("size")
        return "counts" in segmentation and isinstance(size, list) and len(size) == 2
    return (
        isinstance(segmentation, list)
        and bool(segmentation)
        and all(isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 for p in segmentation)
    )


def segm_problem(coco: dict) -> str | None:
    """Why COCOeval(segm) cannot run on this ground truth, or None: every annotation needs a
    segmentation, every image its height and width (COCO decodes polygons at that size)."""
    annotations = coco["annotations"]
    missing = sum(1 for a in annotations if not _has_segmentation(a.get("segmentation")))
    if missing:
        return (
            f"{missing} of {len(annotations)} annotations have no segmentation (polygons or RLE): "
            "segm AP needs ground-truth masks"
        )
    sizeless = sum(1 for image in coco["images"] if not (image.get("width") and image.get("height")))
    if sizeless:
        return f"{sizeless} images have no width/height: COCO's masks are decoded at the annotated size"
    return None


def coco_eval(gt, results: list[dict], image_ids: list[int], iou_type: str = "bbox"):
    """COCOeval (bbox, or segm for results with RLE "segmentation") evaluated, accumulated and
    summarised on `image_ids`, printing nothing. The results COCO object is built as COCO.loadRes
    builds it (boxes: area w*h; masks: the RLE's area and bounding box; iscrowd 0), which also works
    when there are no detections at all."""
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if iou_type == "segm":
        anns = [
            {
                **r,
                "id": i + 1,
                "area": float(mask_utils.area(r["segmentation"])),
                "bbox": [float(v) for v in mask_utils.toBbox(r["segmentation"])],
                "iscrowd": 0,
            }
            for i, r in enumerate(results)
        ]
    else:
        anns = [{**r, "id": i + 1, "area": r["bbox"][2] * r["bbox"][3], "iscrowd": 0} for i, r in enumerate(results)]
    dt = COCO()
    dt.dataset = {
        "images": list(gt.dataset["images"]),
        "categories": list(gt.dataset["categories"]),
        "annotations": anns,
    }
    with contextlib.redirect_stdout(io.StringIO()):
        dt.createIndex()
        evaluation = COCOeval(gt, dt, iou_type)
        evaluation.params.imgIds = sorted(set(image_ids))
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return evaluation


class ResampledAP:
    """COCO mAP (area all, 100 detections, IoU .50:.05:.95) on a weighted multiset of images, from
    one COCOeval's evalImgs. weights: (n_images,) in the order of `image_ids` given at creation."""

    ELEMENTS = 250_000  # (resamples x IoU thresholds x detections) at once: cache-sized, the fastest here

    def __init__(self, evaluation, image_ids: list[int]):
        params = evaluation.params
        self.rec_thresholds = np.asarray(params.recThrs)
        n_images, max_det = len(params.imgIds), params.maxDets[-1]
        where = {image_id: i for i, image_id in enumerate(image_ids)}
        position = {image_id: where[image_id] for image_id in params.imgIds}
        area_all = [tuple(a) for a in params.areaRng].index(tuple(params.areaRng[0]))
        self.categories = []
        for k in range(len(params.catIds)):
            start = k * len(params.areaRng) * n_images + area_all * n_images
            entries = [e for e in evaluation.evalImgs[start : start + n_images] if e is not None]
            if not entries:
                continue
            scores = np.concatenate([e["dtScores"][:max_det] for e in entries])
            order = np.argsort(-scores, kind="mergesort")  # COCOeval's order
            image = np.concatenate(
                [np.full(min(len(e["dtScores"]), max_det), position[e["image_id"]]) for e in entries]
            )[order]
            matched = np.concatenate([e["dtMatches"][:, :max_det] for e in entries], axis=1)[:, order]
            ignored = np.concatenate([e["dtIgnore"][:, :max_det] for e in entries], axis=1)[:, order].astype(bool)
            objects = np.zeros(len(image_ids))
            for e in entries:
                objects[position[e["image_id"]]] += np.count_nonzero(np.asarray(e["gtIgnore"]) == 0)
            self.categories.append((image, (matched != 0) & ~ignored, (matched == 0) & ~ignored, objects))

    def __call__(self, weights: np.ndarray) -> float:
        """mAP in points (0-100); NaN when no category has an object among the weighted images."""
        return float(self.batch(np.asarray(weights)[None])[0])

    def batch(self, weights: np.ndarray) -> np.ndarray:
        """(B,) mAP in points for (B, n_images) integer weights. The weights are multiplicities, so
        the cumulative counts are exact integers, as COCOeval's. An undrawn image's entries stay in
        the ranking with weight 0: they repeat their neighbour's point of the curve, which changes
        no interpolated precision."""
        weights = np.asarray(weights, np.int64)
        sums, counts = np.zeros(len(weights)), np.zeros(len(weights))
        for image, tps, fps, objects in self.categories:
            step = max(1, self.ELEMENTS // max(1, tps.size))  # resamples at a time: bounded memory
            for start in range(0, len(weights), step):
                part = slice(start, start + step)
                npig = weights[part] @ objects.astype(np.int64)
                w = weights[part][:, image][:, None, :]
                q = self._interpolated(np.cumsum(tps * w, axis=2), np.cumsum(fps * w, axis=2), npig)
                present = npig > 0  # COCOeval leaves a category without objects out of the mean
                sums[part][present] += q[present].sum(axis=(1, 2))
                counts[part][present] += q[0].size
        with np.errstate(invalid="ignore"):
            return np.where(counts > 0, 100 * sums / np.maximum(counts, 1), math.nan)

    def _interpolated(self, tp: np.ndarray, fp: np.ndarray, npig: np.ndarray) -> np.ndarray:
        """COCOeval's (B, T, R) precision at the recall thresholds from (B, T, N) integer cumulative
        counts and (B,) object counts."""
        batch, rows, n = tp.shape
        recall_points = self.rec_thresholds.size
        if n == 0:
            return np.zeros((batch, rows, recall_points))
        precision = tp / (fp + tp + np.spacing(1))
        precision = np.maximum.accumulate(precision[..., ::-1], axis=-1)[..., ::-1]  # COCOeval's envelope
        # searchsorted(tp / npig, recThrs, 'left') per row, in integers: the first k with k / npig >= r
        needed = np.zeros((batch, recall_points), np.int64)
        for count in np.unique(npig[npig > 0]):
            needed[npig == count] = np.searchsorted(np.arange(count + 1) / count, self.rec_thresholds, side="left")
        stride = int(npig.max()) + 2  # rows of tp (<= npig) laid end to end stay sorted
        offsets = (np.arange(batch * rows) * stride)[:, None]
        keys = (tp.reshape(batch * rows, n) + offsets).ravel()
        queries = (np.repeat(needed, rows, axis=0) + offsets).ravel()
        index = (
            np.searchsorted(keys, queries, side="left").reshape(batch * rows, -1) - np.arange(batch * rows)[:, None] * n
        )
        flat = precision.reshape(batch * rows, n)
        q = np.where(index < n, np.take_along_axis(flat, np.minimum(index, n - 1), axis=1), 0.0)
        return q.reshape(batch, rows, recall_points)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) IoU of x1 y1 x2 y2 boxes (continuous areas)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(np.clip(x[:, 2:] - x[:, :2], 0, None), axis=1)  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def matches(boxes_a, labels_a, boxes_b, labels_b, threshold: float = MATCH_IOU) -> int:
    """Greedy one-to-one matches of a's boxes (in order) to b's of the same label with IoU >= threshold."""
    if len(boxes_a) == 0 or len(boxes_b) == 0:
        return 0
    iou = _iou(np.asarray(boxes_a, np.float64), np.asarray(boxes_b, np.float64))
    iou[np.asarray(labels_a)[:, None] != np.asarray(labels_b)[None, :]] = -1
    used = np.zeros(len(boxes_b), bool)
    found = 0
    for row in iou:
        row = np.where(used, -1, row)
        best = int(np.argmax(row))
        if row[best] >= threshold:
            used[best] = True
            found += 1
    return found


def confident(arrays: dict, position: int) -> tuple[np.ndarray, np.ndarray]:
    keep = (arrays["labels"][position] >= 0) & (arrays["scores"][position] >= CONFIDENT)
    return arrays["boxes"][position][keep], arrays["labels"][position][keep]


class DetectionAnalysis:
    """Numbers for results.json from a detection run's outputs and the COCO ground truth."""

    metric = MAP

    def __init__(self, dataset, resamples: int = RESAMPLES):
        self.dataset, self.resamples = dataset, resamples
        self.gt = ground_truth(dataset.coco)
        self.image_of = {s.id: s.image_id for s in dataset.samples}
        self._columns: dict[tuple, tuple] = {}
        objects: dict[int, list] = {}
        for ann in dataset.coco["annotations"]:
            if not ann.get("iscrowd"):
                x, y, w, h = ann["bbox"]
                objects.setdefault(ann["image_id"], []).append(([x, y, x + w, y + h], ann["category_id"]))
        self.objects = objects

    def _valid(self, outputs) -> tuple[np.ndarray, list[int]]:
        positions = np.flatnonzero(outputs.valid)
        return positions, [self.image_of[outputs.sample_ids[p]] for p in positions]

    def column(self, outputs, column_id: str):
        """(COCOeval stats dict in points, its ResampledAP, its bootstrap metric), computed once."""
        key = (id(outputs), column_id)
        if key not in self._columns:
            positions, image_ids = self._valid(outputs)
            arrays = outputs.arrays[column_id]
            failed = outputs.errors[column_id][positions] != ""
            boxes, scores, labels = (arrays[name][positions] for name in ("boxes", "scores", "labels"))
            labels = np.where(failed[:, None], -1, labels)  # a failed sample detects nothing
            evaluation = coco_eval(self.gt, detections_json(boxes, scores, labels, image_ids), image_ids)
            stats = {name: float(100 * v) if v >= 0 else None for name, v in zip(STATS, evaluation.stats)}
            resampled = ResampledAP(evaluation, image_ids)
            metric = CachedMetric(
                lambda indices: resampled(np.bincount(indices, minlength=len(image_ids))), resampled.batch
            )
            self._columns[key] = (stats, resampled, metric, self._per_class(evaluation))
        return self._columns[key]

    def _per_class(self, evaluation) -> dict[str, float | None]:
        precision = evaluation.eval["precision"][:, :, :, 0, -1]  # IoU x recall x class, area all, 100 dets
        out = {}
        for k, category in enumerate(evaluation.params.catIds):
            values = precision[:, :, k]
            values = values[values > -1]
            out[self.dataset.class_names.get(category, str(category))] = (
                float(100 * values.mean()) if values.size else None
            )
        return out

    def segm_column(self, outputs, column_id: str):
        """Mask AP of a column whose outputs hold masks (a model with a mask head): ({segm_ap,
        segm_ap50, segm_ap75} in points, its bootstrap metric, None), or (None, None, the reason
        it is not computed); None for a model without masks. Computed once per column."""
        if "masks" not in outputs.ragged_names():
            return None
        key = (id(outputs), column_id, "segm")
        if key not in self._columns:
            positions, image_ids = self._valid(outputs)
            blobs = outputs.ragged(column_id, "masks")
            failed = outputs.errors[column_id][positions] != ""
            blobs = [b"" if bad else blobs[p] for p, bad in zip(positions, failed)]  # a failed sample: nothing
            if self.segm_problem is not None:
                self._columns[key] = (None, None, self.segm_problem)
            elif positions.size and not any(blobs):
                self._columns[key] = (None, None, SEGM_NOT_APPLICABLE)
            else:
                arrays = outputs.arrays[column_id]
                scores, labels = arrays["scores"][positions], arrays["labels"][positions]
                labels = np.where(failed[:, None], -1, labels)
                evaluation = coco_eval(self.gt, segmentations_json(blobs, scores, labels, image_ids), image_ids, "segm")
                stats = {
                    f"segm_{name}": float(100 * v) if v >= 0 else None
                    for name, v in zip(("ap", "ap50", "ap75"), evaluation.stats[:3])
                }
                resampled = ResampledAP(evaluation, image_ids)  # COCOeval's per-image matching, as for boxes
                metric = CachedMetric(
                    lambda indices: resampled(np.bincount(indices, minlength=len(image_ids))), resampled.batch
                )
                self._columns[key] = (stats, metric, None)
        return self._columns[key]

    @cached_property
    def segm_problem(self) -> str | None:
        """Why the ground truth cannot give segm AP, or None."""
        return segm_problem(self.dataset.coco)

    def _segm_reference(self, outputs) -> dict:
        found = self.segm_column(outputs, outputs.column_ids[0])
        if found is None:
            return {}
        stats, metric, reason = found
        if stats is None:
            warnings.warn(f"segm AP not computed: {reason}", stacklevel=3)
            return {"segm_not_computed": reason}
        n = int(outputs.valid.sum())
        return {**stats, "segm_ap_ci": percentile_interval(metric.prefill(n, self.resamples)) if n else None}

    def _segm_variant(self, outputs, column_id: str) -> dict:
        found = self.segm_column(outputs, column_id)
        reference = self.segm_column(outputs, outputs.column_ids[0])
        if found is None or reference is None:
            return {}
        stats, metric, reason = found
        if stats is None or reference[0] is None:
            return {"segm_not_computed": reason or reference[2]}
        n = int(outputs.valid.sum())
        comparison = None
        if n:
            reference[1].prefill(n, self.resamples)
            metric.prefill(n, self.resamples)
            comparison = st.paired_bootstrap_metric(reference[1], metric, n, resamples=self.resamples)
        return {
            **stats,
            "segm_delta": comparison.delta if comparison else None,
            "segm_delta_ci": comparison.ci if comparison else None,
            "segm_p_value": comparison.p_value if comparison else None,
        }

    def reference_metrics(self, outputs) -> dict:
        stats, _, metric, per_class = self.column(outputs, outputs.column_ids[0])
        n = int(outputs.valid.sum())
        ci = percentile_interval(metric.prefill(n, self.resamples)) if n else None  # the variants' resamples
        return {
            "n": n,
            "n_labeled": n,
            **stats,
            "map_ci": ci,
            "per_class_ap": per_class,
            "resamples": self.resamples,
            **self._segm_reference(outputs),
        }

    def variant_stats(self, outputs, column_id: str, noise: str, option: str) -> VariantStats:
        reference_id = outputs.column_ids[0]
        positions, image_ids = self._valid(outputs)
        ref_stats, _, ref_metric, _ = self.column(outputs, reference_id)
        stats, _, metric, per_class = self.column(outputs, column_id)
        n = len(positions)
        comparison = None
        if n:
            ref_metric.prefill(n, self.resamples)
            metric.prefill(n, self.resamples)
            comparison = st.paired_bootstrap_metric(ref_metric, metric, n, resamples=self.resamples)
        ref, var = outputs.arrays[reference_id], outputs.arrays[column_id]
        failed = outputs.errors[column_id] != ""
        changed, fewer, more, identical = 0, 0, 0, 0
        for position, image_id in zip(positions, image_ids):
            same = all(np.array_equal(ref[k][position], var[k][position]) for k in ("boxes", "scores", "labels"))
            identical += same and not failed[position]
            if same and not failed[position]:
                continue
            rb, rl = confident(ref, position)
            vb, vl = confident(var, position) if not failed[position] else (np.zeros((0, 4)), np.zeros(0))
            both = matches(rb, rl, vb, vl)
            changed += both < len(rl) or both < len(vl)
            truth = self.objects.get(image_id, [])
            gt_boxes, gt_labels = np.asarray([t[0] for t in truth]).reshape(-1, 4), [t[1] for t in truth]
            found_ref, found_var = matches(rb, rl, gt_boxes, gt_labels), matches(vb, vl, gt_boxes, gt_labels)
            fewer += found_var < found_ref
            more += found_var > found_ref
        low, high = st.wilson_interval(changed, n)
        return VariantStats(
            id=column_id,
            noise=noise,
            option=option,
            n=n,
            n_labeled=n,
            metric=self.metric.key,
            value=stats["map"],
            extra={
                **{k: v for k, v in stats.items() if k != "map"},
                "per_class_ap": per_class,
                **self._segm_variant(outputs, column_id),
            },
            delta=comparison.delta if comparison else None,
            delta_ci=comparison.ci if comparison else None,
            p_value=comparison.p_value if comparison else None,
            correct_to_wrong=int(fewer),
            wrong_to_correct=int(more),
            flip_rate=float(100 * changed / n) if n else math.nan,
            flip_ci=(100 * low, 100 * high),
            n_failed=int(failed[positions].sum()),
            identical=float(100 * identical / n) if n else math.nan,
        )
