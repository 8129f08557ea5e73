// Durations as seconds, for every timing the package reports (the profile, `faceembed bench`, LFW evaluation).

extension Duration {
    /// The duration in seconds, as a `Double` (for timings and rates).
    package var inSeconds: Double {
        Double(components.seconds) + Double(components.attoseconds) * 1e-18
    }
}
