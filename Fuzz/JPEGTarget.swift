// Fuzz target: baseline JPEG through JPEG.decode (and the sniffing in ImageDecoder.decode).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = FuzzSupport.bytes(data, size)
    if let image = try? JPEG.decode(bytes) {
        precondition(image.pixels.count == image.width * image.height * 3)
    }
    if size >= 2, data[0] == 0xFF, data[1] == 0xD8 { _ = try? ImageDecoder.decode(bytes) }
    return 0
}
