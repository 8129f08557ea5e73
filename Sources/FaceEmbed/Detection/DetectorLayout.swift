// Where a detector plan keeps its results: for each stride (8, 16, 32) the score, box and landmark maps that
// insightface's SCRFD exports as `score_8`, `bbox_8`, `kps_8`, … Each is an NCHW map of the level's grid (the input
// size divided by the stride) with A anchors per location: A score planes, 4·A box planes and 10·A landmark planes,
// plane a·k + j holding column j of anchor a (the layout the graph's Transpose/Reshape would flatten row by row).

/// The values of one stride level of a detector plan.
package struct DetectorLevelValues: Equatable, Sendable {
    package var stride: Int
    package var scores: Int, boxes: Int, landmarks: Int
}

/// A detector plan's output maps, checked against each other and against the input size.
package struct DetectorLayout: Equatable, Sendable {
    /// The strides SCRFD predicts at, finest first.
    package static let strides = [8, 16, 32]
    package var levels: [DetectorLevelValues]
    /// Anchors per grid location.
    package var anchors: Int

    /// The layout of `plan`, or an error (`fail`) naming the output that is missing or of the wrong shape.
    package init(_ plan: ModelPlan, fail: (String) -> FaceEmbedError) throws(FaceEmbedError) {
        func value(_ name: String) throws(FaceEmbedError) -> Int {
            guard let o = plan.outputs.first(where: { $0.name == name }) else {
                throw fail(
                    "no output \(name) (a detector has SCRFD's outputs score_8/16/32, bbox_8/16/32, kps_8/16/32)")
            }
            return o.value
        }
        var levels: [DetectorLevelValues] = []
        for s in Self.strides {
            levels.append(
                DetectorLevelValues(
                    stride: s, scores: try value("score_\(s)"), boxes: try value("bbox_\(s)"),
                    landmarks: try value("kps_\(s)")))
        }
        anchors = plan.values[levels[0].scores].c
        self.levels = levels
        try check(plan, fail: fail)
    }

    /// Every level's maps cover the input at its stride with `anchors` anchors.
    private func check(_ plan: ModelPlan, fail: (String) -> FaceEmbedError) throws(FaceEmbedError) {
        let input = plan.values[0]
        guard plan.outputs.count == 9, (1...16).contains(anchors) else {
            throw fail("a detector has SCRFD's nine outputs with 1 to 16 anchors")
        }
        for l in levels {
            let grid = (h: input.h / l.stride, w: input.w / l.stride)
            for (v, k, name) in [(l.scores, 1, "score"), (l.boxes, 4, "bbox"), (l.landmarks, 10, "kps")] {
                let s = plan.values[v]
                guard s == ValueShape(c: k * anchors, h: grid.h, w: grid.w) else {
                    throw fail(
                        "output \(name)_\(l.stride) is \(s.c)x\(s.h)x\(s.w), expected \(k * anchors)x\(grid.h)x\(grid.w) "
                            + "for a \(input.w)x\(input.h) input")
                }
            }
        }
    }
}
