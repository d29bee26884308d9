//! The wall clock, in one place: Unix seconds for certificate and assertion times, and RFC 3339
//! for what people read. Every module takes its time from here, so tests and logs agree. Also
//! [`within`], a deadline that costs nothing when the work is already done.

/// `fut`'s output, unless `deadline` passes first (`None`). The future is polled before a
/// timer is armed: work that is ready at once (a body already read with its head, an answer
/// already in the buffer) costs no timer, which on a pass-through request is most of them.
/// A plain future, not an `async fn`: `fut` is moved once, into it, and not again into an
/// `async fn`'s own state (a copy of a large future per call).
pub fn within<F: std::future::Future>(deadline: tokio::time::Instant, fut: F) -> Within<F> {
    Within {
        fut,
        deadline,
        timer: None,
    }
}

pin_project_lite::pin_project! {
    /// The future of [`within`].
    pub struct Within<F> {
        #[pin]
        fut: F,
        deadline: tokio::time::Instant,
        #[pin]
        timer: Option<tokio::time::Sleep>,
    }
}

impl<F: std::future::Future> std::future::Future for Within<F> {
    type Output = Option<F::Output>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        use std::task::Poll;
        let mut this = self.project();
        if let Poll::Ready(out) = this.fut.poll(cx) {
            return Poll::Ready(Some(out));
        }
        if this.timer.as_mut().as_pin_mut().is_none() {
            this.timer
                .set(Some(tokio::time::sleep_until(*this.deadline)));
        }
        let Some(timer) = this.timer.as_pin_mut() else {
            return Poll::Pending;
        };
        // Read first: polling a timer costs the task's cooperative budget, which work that
        // used all of it must not be able to dodge the deadline with.
        if timer.is_elapsed() || timer.poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    }
}

/// RFC 3339 UTC time for messages.
pub fn fmt_time(unix: i64) -> String {
    ::time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&::time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// RFC 3339 UTC time with milliseconds (`2026-11-30T11:42:43.081Z`), now: the audit record's.
pub fn now_rfc3339_millis() -> String {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut out = fmt_time(since.as_secs() as i64);
    if out.ends_with('Z') {
        out.pop();
        let ms = since.subsec_millis();
        out.push('.');
        for digit in [ms / 100, ms / 10 % 10, ms % 10] {
            out.push(char::from(b'0' + digit as u8));
        }
        out.push('Z');
    }
    out
}

/// Current Unix time in seconds, with its fraction.
pub fn now_unix_f64() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Current Unix time in seconds.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn within_gives_what_is_ready_and_nothing_past_the_deadline() {
        use std::time::Duration;
        use tokio::time::Instant;
        let past = Instant::now() - Duration::from_secs(1);
        assert_eq!(within(past, async { 7 }).await, Some(7));
        let soon = Instant::now() + Duration::from_millis(100);
        let slow = tokio::time::sleep(Duration::from_millis(200));
        assert_eq!(within(soon, slow).await, None);
        assert!(Instant::now() >= soon && Instant::now() < soon + Duration::from_millis(50));
        let later = Instant::now() + Duration::from_millis(100);
        let quick = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            8
        };
        assert_eq!(within(later, quick).await, Some(8));
    }

    #[test]
    fn audit_times_have_three_millisecond_digits_before_the_z() {
        let now = now_rfc3339_millis();
        assert_eq!(now.len(), 24, "{now}");
        assert_eq!((&now[19..20], &now[23..]), (".", "Z"), "{now}");
        assert!(now[20..23].bytes().all(|b| b.is_ascii_digit()), "{now}");
        let secs =
            ::time::OffsetDateTime::parse(&now, &::time::format_description::well_known::Rfc3339)
                .unwrap()
                .unix_timestamp();
        assert!((secs - now_unix()).abs() <= 1, "{now}");
    }
}
