/// The library's version.
public enum FaceEmbedVersion {
    /// Semantic version of this release.
    public static let string = "0.5.0"
}
