// Fuzz target: Netpbm (P2, P3, P5, P6) through PPM.decode and ImageDecoder.decode's sniffing.
/// libFuzzer's entry point: one input of `size` bytes at `data`; returns 0.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = FuzzSupport.bytes(data, size)
    if let image = try? PPM.decode(bytes) {
        // What decodes must encode and decode back to the same pixels.
        precondition(image.pixels.count == image.width * image.height * 3)
        precondition((try? PPM.decode(PPM.encode(image))) == image, "PPM round trip differs")
    }
    _ = try? ImageDecoder.decode(bytes)
    return 0
}
