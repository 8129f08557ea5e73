// Fuzz target: JPEG (baseline and progressive scans, CMYK/YCCK colour, EXIF orientation) through JPEG.decode and
// the sniffing in ImageDecoder.decode, which applies the orientation.
/// libFuzzer's entry point: one input of `size` bytes at `data`; returns 0.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = FuzzSupport.bytes(data, size)
    if let (image, orientation) = try? JPEG.decodeWithOrientation(bytes) {
        precondition(image.pixels.count == image.width * image.height * 3)
        let upright = image.oriented(orientation)
        precondition(upright.pixels.count == image.pixels.count && (1...8).contains(orientation))
    }
    if size >= 2, data[0] == 0xFF, data[1] == 0xD8 { _ = try? ImageDecoder.decode(bytes) }
    return 0
}
