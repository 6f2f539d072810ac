import Foundation
import Testing

@testable import AWS

/// `Last-Modified` parsing: the hand-written IMF-fixdate parser agrees with a formatter.
struct S3HTTPDateTests {
    @Test func imfFixdateParsesToTheRightInstant() {
        // RFC 9110's example.
        #expect(S3ObjectStore.parseIMFFixdate("Sun, 06 Nov 1994 08:49:37 GMT") == Date(timeIntervalSince1970: 784_111_777))
        #expect(S3ObjectStore.parseIMFFixdate("Thu, 01 Jan 1970 00:00:00 GMT") == Date(timeIntervalSince1970: 0))
        #expect(S3ObjectStore.parseIMFFixdate("Tue, 29 Feb 2028 23:59:59 GMT") == Date(timeIntervalSince1970: 1_835_481_599))
    }

    @Test func imfFixdateAgreesWithDateFormatterAcrossYearsAndMonths() {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "GMT")
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        var t = -2_000_000_000.0
        while t < 4_000_000_000 {
            let date = Date(timeIntervalSince1970: t)
            let text = f.string(from: date)
            #expect(S3ObjectStore.parseIMFFixdate(text) == date, "\(text)")
            t += 7_776_061  // ~90 days and a bit, so every month and time of day comes round
        }
    }

    @Test func otherFormsAndGarbageAreNotIMFFixdate() {
        for s in [
            "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 06 Foo 1994 08:49:37 GMT", "Sun, 32 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 0x Nov 1994 08:49:37 GMT", "",
        ] {
            #expect(S3ObjectStore.parseIMFFixdate(s) == nil, "\(s)")
        }
        // A zone other than GMT still parses, through the formatter fallback.
        #expect(S3ObjectStore.parseHTTPDate("Sun, 06 Nov 1994 08:49:37 UTC") == Date(timeIntervalSince1970: 784_111_777))
    }
}
