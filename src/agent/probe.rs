//! The pure probe state machine: when each of a container's probes is due, and what a result
//! means (thresholds, startup gating, the kill verdict). Time is an argument (milliseconds),
//! so every path is a unit test with a controllable clock; `prober` runs the handlers.
//!
//! Kubernetes' semantics: a probe first runs `initialDelaySeconds` after the container
//! started, then every `periodSeconds`; `successThreshold` consecutive successes make it
//! pass and `failureThreshold` consecutive failures make it fail. The startupProbe gates the
//! other two; until it passes the container is not started. A liveness (or startup) probe
//! that fails kills the container. Readiness starts as failed; a container without a
//! readinessProbe is ready once started.

use crate::pod::spec::{ContainerSpec, Probe};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProbeKind {
    Startup,
    Liveness,
    Readiness,
}

impl ProbeKind {
    /// As kubelet words it in events: "Liveness probe failed: ...".
    pub fn title(self) -> &'static str {
        match self {
            ProbeKind::Startup => "Startup",
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
        }
    }

    /// As kubelet words a kill: "failed liveness probe".
    pub fn lower(self) -> &'static str {
        match self {
            ProbeKind::Startup => "startup",
            ProbeKind::Liveness => "liveness",
            ProbeKind::Readiness => "readiness",
        }
    }
}

/// One probe's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeState {
    pub kind: ProbeKind,
    initial_delay_ms: u64,
    period_ms: u64,
    success_threshold: u32,
    failure_threshold: u32,
    successes: u32,
    failures: u32,
    last_run_ms: Option<u64>,
    /// The probe's settled result: None until a threshold was reached.
    passing: Option<bool>,
}

impl ProbeState {
    pub fn new(kind: ProbeKind, probe: &Probe) -> ProbeState {
        ProbeState {
            kind,
            initial_delay_ms: probe.initial_delay.as_millis() as u64,
            period_ms: (probe.period.as_millis() as u64).max(1),
            success_threshold: probe.success_threshold.max(1),
            failure_threshold: probe.failure_threshold.max(1),
            successes: 0,
            failures: 0,
            last_run_ms: None,
            passing: None,
        }
    }

    /// When the next run is due: the initial delay after the start, then every period.
    pub fn due_at(&self, started_ms: u64) -> u64 {
        match self.last_run_ms {
            None => started_ms.saturating_add(self.initial_delay_ms),
            Some(last) => last.saturating_add(self.period_ms),
        }
    }

    /// Counts one result; returns the settled result when it changed.
    fn record(&mut self, ok: bool, now_ms: u64) -> Option<bool> {
        self.last_run_ms = Some(now_ms);
        if ok {
            self.failures = 0;
            self.successes = self.successes.saturating_add(1);
            if self.successes >= self.success_threshold && self.passing != Some(true) {
                self.passing = Some(true);
                return Some(true);
            }
        } else {
            self.successes = 0;
            self.failures = self.failures.saturating_add(1);
            if self.failures >= self.failure_threshold && self.passing != Some(false) {
                self.passing = Some(false);
                return Some(false);
            }
        }
        None
    }
}

/// What the runner must do after a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing changes.
    None,
    /// The startup probe passed: the container is started; liveness and readiness begin.
    Started,
    /// Readiness changed.
    Ready(bool),
    /// Liveness or startup failed `failureThreshold` times: kill the container (it then
    /// restarts as its pod's restartPolicy says).
    Kill(ProbeKind),
}

/// All probes of one running container instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerProbes {
    started_ms: u64,
    startup: Option<ProbeState>,
    liveness: Option<ProbeState>,
    readiness: Option<ProbeState>,
    started: bool,
    ready: bool,
    /// Once a kill was decided nothing runs any more: the instance is on its way out.
    killed: bool,
}

impl ContainerProbes {
    /// The probes of a container that started at `started_ms` (after its postStart hook).
    pub fn new(spec: &ContainerSpec, started_ms: u64) -> ContainerProbes {
        let state = |kind, p: &Option<Probe>| p.as_ref().map(|p| ProbeState::new(kind, p));
        let startup = state(ProbeKind::Startup, &spec.startup_probe);
        let readiness = state(ProbeKind::Readiness, &spec.readiness_probe);
        let started = startup.is_none();
        ContainerProbes {
            started_ms,
            ready: started && readiness.is_none(),
            started,
            startup,
            liveness: state(ProbeKind::Liveness, &spec.liveness_probe),
            readiness,
            killed: false,
        }
    }

    pub fn started(&self) -> bool {
        self.started
    }

    pub fn ready(&self) -> bool {
        self.ready
    }

    fn active(&self) -> impl Iterator<Item = &ProbeState> {
        let gated = !self.started || self.killed;
        let startup = self.startup.as_ref().filter(|_| !self.started);
        let rest = [self.liveness.as_ref(), self.readiness.as_ref()]
            .into_iter()
            .flatten()
            .filter(move |_| !gated);
        startup.into_iter().chain(rest).filter(|_| !self.killed)
    }

    /// The probes due at `now_ms`.
    pub fn due(&self, now_ms: u64) -> Vec<ProbeKind> {
        self.active()
            .filter(|p| p.due_at(self.started_ms) <= now_ms)
            .map(|p| p.kind)
            .collect()
    }

    /// The earliest time any probe is due (None: nothing will run again).
    pub fn next_due(&self) -> Option<u64> {
        self.active().map(|p| p.due_at(self.started_ms)).min()
    }

    /// Counts a result of `kind` obtained at `now_ms`.
    pub fn record(&mut self, kind: ProbeKind, ok: bool, now_ms: u64) -> Verdict {
        if self.killed {
            return Verdict::None;
        }
        let probe = match kind {
            ProbeKind::Startup => self.startup.as_mut(),
            ProbeKind::Liveness => self.liveness.as_mut(),
            ProbeKind::Readiness => self.readiness.as_mut(),
        };
        let Some(probe) = probe else {
            return Verdict::None;
        };
        match (kind, probe.record(ok, now_ms)) {
            (ProbeKind::Startup, Some(true)) => {
                self.started = true;
                if self.readiness.is_none() {
                    self.ready = true;
                }
                Verdict::Started
            }
            (ProbeKind::Startup | ProbeKind::Liveness, Some(false)) => {
                self.killed = true;
                self.ready = false;
                Verdict::Kill(kind)
            }
            (ProbeKind::Readiness, Some(r)) if r != self.ready => {
                self.ready = r;
                Verdict::Ready(r)
            }
            _ => Verdict::None,
        }
    }

    /// Whether a kill was decided.
    pub fn killed(&self) -> bool {
        self.killed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod::spec::{PortRef, ProbeHandler};
    use std::time::Duration;

    fn probe(delay: u64, period: u64, success: u32, failure: u32) -> Probe {
        let mut p = Probe::with_handler(ProbeHandler::TcpSocket {
            port: PortRef::Number(80),
            host: None,
        });
        p.initial_delay = Duration::from_secs(delay);
        p.period = Duration::from_secs(period);
        p.success_threshold = success;
        p.failure_threshold = failure;
        p
    }

    fn container(
        startup: Option<Probe>,
        liveness: Option<Probe>,
        readiness: Option<Probe>,
    ) -> ContainerSpec {
        let mut spec = crate::pod::pod_from_yaml_str(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: app, image: x:1}\n",
        )
        .unwrap()
        .containers
        .remove(0);
        spec.startup_probe = startup;
        spec.liveness_probe = liveness;
        spec.readiness_probe = readiness;
        spec
    }

    const T0: u64 = 1_000_000;

    #[test]
    fn a_container_without_probes_is_started_and_ready_at_once() {
        let p = ContainerProbes::new(&container(None, None, None), T0);
        assert!(p.started() && p.ready());
        assert_eq!(p.next_due(), None);
    }

    #[test]
    fn the_first_run_waits_the_initial_delay_then_runs_every_period() {
        let mut p = ContainerProbes::new(&container(None, Some(probe(5, 10, 1, 3)), None), T0);
        assert!(p.due(T0 + 4_999).is_empty());
        assert_eq!(p.due(T0 + 5_000), vec![ProbeKind::Liveness]);
        assert_eq!(
            p.record(ProbeKind::Liveness, true, T0 + 5_000),
            Verdict::None
        );
        assert_eq!(p.next_due(), Some(T0 + 15_000));
        assert!(p.due(T0 + 14_999).is_empty());
        assert_eq!(p.due(T0 + 15_000), vec![ProbeKind::Liveness]);
    }

    #[test]
    fn liveness_kills_after_failure_threshold_consecutive_failures() {
        let mut p = ContainerProbes::new(&container(None, Some(probe(0, 1, 1, 3)), None), T0);
        assert_eq!(p.record(ProbeKind::Liveness, false, T0), Verdict::None);
        assert_eq!(
            p.record(ProbeKind::Liveness, false, T0 + 1_000),
            Verdict::None
        );
        // A success in between starts the count over.
        assert_eq!(
            p.record(ProbeKind::Liveness, true, T0 + 2_000),
            Verdict::None
        );
        assert_eq!(
            p.record(ProbeKind::Liveness, false, T0 + 3_000),
            Verdict::None
        );
        assert_eq!(
            p.record(ProbeKind::Liveness, false, T0 + 4_000),
            Verdict::None
        );
        assert_eq!(
            p.record(ProbeKind::Liveness, false, T0 + 5_000),
            Verdict::Kill(ProbeKind::Liveness)
        );
        assert!(p.killed() && !p.ready());
        assert_eq!(p.next_due(), None, "a killed instance is probed no more");
        assert_eq!(
            p.record(ProbeKind::Liveness, false, T0 + 6_000),
            Verdict::None
        );
    }

    #[test]
    fn readiness_starts_false_and_follows_its_thresholds() {
        let mut p = ContainerProbes::new(&container(None, None, Some(probe(0, 1, 2, 2))), T0);
        assert!(p.started() && !p.ready());
        assert_eq!(p.record(ProbeKind::Readiness, true, T0), Verdict::None);
        assert_eq!(
            p.record(ProbeKind::Readiness, true, T0 + 1_000),
            Verdict::Ready(true)
        );
        assert_eq!(
            p.record(ProbeKind::Readiness, false, T0 + 2_000),
            Verdict::None
        );
        assert_eq!(
            p.record(ProbeKind::Readiness, false, T0 + 3_000),
            Verdict::Ready(false)
        );
        assert!(!p.ready() && !p.killed(), "readiness never kills");
        assert_eq!(
            p.record(ProbeKind::Readiness, true, T0 + 4_000),
            Verdict::None
        );
        assert_eq!(
            p.record(ProbeKind::Readiness, true, T0 + 5_000),
            Verdict::Ready(true)
        );
    }

    #[test]
    fn the_startup_probe_gates_liveness_and_readiness() {
        let mut p = ContainerProbes::new(
            &container(
                Some(probe(0, 1, 1, 30)),
                Some(probe(0, 10, 1, 3)),
                Some(probe(0, 10, 1, 3)),
            ),
            T0,
        );
        assert!(!p.started() && !p.ready());
        assert_eq!(p.due(T0 + 60_000), vec![ProbeKind::Startup]);
        assert_eq!(p.record(ProbeKind::Startup, false, T0), Verdict::None);
        assert_eq!(
            p.record(ProbeKind::Startup, true, T0 + 1_000),
            Verdict::Started
        );
        assert!(p.started() && !p.ready(), "readiness still has to pass");
        // The others' initial delays count from the container's start: both due at once.
        assert_eq!(
            p.due(T0 + 1_000),
            vec![ProbeKind::Liveness, ProbeKind::Readiness]
        );
        assert_eq!(
            p.record(ProbeKind::Readiness, true, T0 + 1_000),
            Verdict::Ready(true)
        );
    }

    #[test]
    fn a_failing_startup_probe_kills_the_container() {
        let mut p = ContainerProbes::new(
            &container(Some(probe(0, 1, 1, 2)), Some(probe(0, 1, 1, 3)), None),
            T0,
        );
        assert_eq!(p.record(ProbeKind::Startup, false, T0), Verdict::None);
        assert_eq!(
            p.record(ProbeKind::Startup, false, T0 + 1_000),
            Verdict::Kill(ProbeKind::Startup)
        );
        assert!(!p.started());
    }

    #[test]
    fn without_a_readiness_probe_readiness_follows_startup() {
        let mut p = ContainerProbes::new(&container(Some(probe(0, 1, 1, 3)), None, None), T0);
        assert!(!p.ready());
        assert_eq!(p.record(ProbeKind::Startup, true, T0), Verdict::Started);
        assert!(p.ready());
    }
}
