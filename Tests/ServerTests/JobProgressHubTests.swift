import Enclave
import Testing
@testable import Server

@Suite struct JobProgressHubTests {
    @Test func lateSubscriberGetsTheReplayThenLiveEventsUntilTheEnd() async {
        let hub = JobProgressHub()
        hub.publish(jobID: "j", .state(.attesting, nil))
        hub.publish(jobID: "j", .progress(ProgressEvent(phase: "training", iteration: 1, total: 3, loss: 0.6)))
        let stream = hub.subscribe(jobID: "j")
        hub.publish(jobID: "j", .progress(ProgressEvent(phase: "training", iteration: 2, total: 3, loss: 0.5)))
        hub.publish(jobID: "j", .state(.succeeded, nil))
        hub.publish(jobID: "j", .progress(ProgressEvent(phase: "late")))  // after the end: dropped
        var seen: [Int] = []
        var last: JobEvent?
        for await (id, event) in stream {
            seen.append(id)
            last = event
        }
        #expect(seen == [1, 2, 3, 4])
        #expect(last == .state(.succeeded, nil))
    }

    @Test func subscriberAfterTheEndGetsTheWholeStoryAndFinishes() async {
        let hub = JobProgressHub()
        hub.publish(jobID: "j", .state(.failed, JobFailure(code: "job.timeout", message: "timed out")))
        var count = 0
        for await _ in hub.subscribe(jobID: "j") { count += 1 }
        #expect(count == 1)
    }

    @Test func progressReplayIsBoundedButStatesAreKept() async {
        let hub = JobProgressHub(progressHistory: 3)
        hub.publish(jobID: "j", .state(.running, nil))
        for i in 0..<10 { hub.publish(jobID: "j", .progress(ProgressEvent(phase: "training", iteration: UInt32(i)))) }
        hub.publish(jobID: "j", .state(.cancelled, JobFailure(code: "job.cancelled", message: "by alpha")))
        var events: [JobEvent] = []
        for await (_, event) in hub.subscribe(jobID: "j") { events.append(event) }
        #expect(events.count == 5)
        #expect(events.first == .state(.running, nil))
    }

    @Test func serverSentEventFramesAreOneEventEach() {
        let frame = JobEvent.progress(ProgressEvent(phase: "training", iteration: 2, total: 10, loss: 0.25, message: "a\nb"))
            .serverSentEvent(id: 7)
        #expect(frame.hasPrefix("id: 7\nevent: progress\ndata: {"))
        #expect(frame.hasSuffix("}\n\n"))
        #expect(frame.components(separatedBy: "\n").count == 5)
        let state = JobEvent.state(.failed, JobFailure(code: "enclave.schema_violation", message: "column age")).serverSentEvent(id: 8)
        #expect(state.contains(#""state":"failed""#))
        #expect(state.contains(#""code":"enclave.schema_violation""#))
    }
}
