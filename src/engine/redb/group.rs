//! Group commit: writes that arrive while another is committing share the next transaction and
//! its one fsync.
//!
//! Each caller queues its job and waits. Whoever finds no leader becomes it: it takes up to
//! `MAX_GROUP_COMMIT_JOBS` queued jobs in arrival order, applies them in one write transaction,
//! commits once, and hands every caller its own answer. A durable commit costs a few
//! milliseconds of fsync whatever it holds, so under concurrent writers the fsyncs are shared
//! instead of queued; a lone writer gets a group of one, the same transaction as before.
//!
//! A group's jobs are applied in queue order, so the stored result is the one the same calls
//! made one after the other would leave. If the group's transaction fails (one job refused, or
//! storage failed), nothing of it is stored and each job runs again alone, so one caller's
//! refusal is never another's: the refused job gets its own error, the others commit (or, after
//! a storage failure, see the poisoned engine's error). A caller returns only after its job's
//! transaction committed, with the durability of the engine, or failed.

use crate::error::{Error, Result};
use crate::limits::MAX_GROUP_COMMIT_JOBS;
use std::collections::{HashMap, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard};

/// The queue of one kind of job (`J`, answered by `T`).
pub(crate) struct Group<J, T> {
    state: Mutex<State<J, T>>,
    done: Condvar,
}

struct State<J, T> {
    next_ticket: u64,
    queue: VecDeque<(u64, J)>,
    answers: HashMap<u64, Result<T>>,
    leading: bool,
}

impl<J, T> Default for Group<J, T> {
    fn default() -> Self {
        Group {
            state: Mutex::new(State {
                next_ticket: 0,
                queue: VecDeque::new(),
                answers: HashMap::new(),
                leading: false,
            }),
            done: Condvar::new(),
        }
    }
}

/// Applies jobs, in order, in one write transaction and commits it; answers in job order.
pub(crate) type CommitFn<'a, J, T> = &'a dyn Fn(Vec<J>) -> Result<Vec<T>>;

impl<J: Clone, T> Group<J, T> {
    /// Queues `job`, waits until a transaction holding it committed or failed, and returns its
    /// answer. `commit` runs a group's jobs in one transaction.
    pub(crate) fn submit(&self, job: J, commit: CommitFn<'_, J, T>) -> Result<T> {
        let mut st = self.lock();
        let ticket = st.next_ticket;
        st.next_ticket += 1;
        st.queue.push_back((ticket, job));
        loop {
            if let Some(answer) = st.answers.remove(&ticket) {
                return answer;
            }
            if st.leading {
                st = self.done.wait(st).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            st.leading = true;
            let n = st.queue.len().min(MAX_GROUP_COMMIT_JOBS);
            let batch: Vec<(u64, J)> = st.queue.drain(..n).collect();
            drop(st);
            let mut lead = Leading {
                group: self,
                tickets: batch.iter().map(|(t, _)| *t).collect(),
                answers: Vec::new(),
            };
            lead.answers = run_group(batch.into_iter().map(|(_, j)| j).collect(), commit);
            drop(lead); // hands out the answers, wakes the waiters
            st = self.lock();
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<J, T>> {
        // A panic while holding the lock cannot leave the queue half-changed: every change
        // under it is one push, drain, insert or remove.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Applies a batch: all in one transaction, or (if that fails, or for a batch of one) each job
/// in its own. Returns the answers in batch order.
fn run_group<J: Clone, T>(jobs: Vec<J>, commit: CommitFn<'_, J, T>) -> Vec<Result<T>> {
    let alone = |job: J| -> Result<T> {
        let mut out = commit(vec![job])?;
        Ok(out.pop().expect("one answer per job"))
    };
    if jobs.len() == 1 {
        return jobs.into_iter().map(alone).collect();
    }
    let copies = jobs.clone();
    match commit(jobs) {
        Ok(answers) => answers.into_iter().map(Ok).collect(),
        Err(_) => copies.into_iter().map(alone).collect(),
    }
}

/// The leader's duty, done on drop so that a panicking job still releases the queue: every
/// ticket of its batch gets an answer (an internal error if the batch did not finish) and the
/// waiters wake.
struct Leading<'g, J, T> {
    group: &'g Group<J, T>,
    tickets: Vec<u64>,
    answers: Vec<Result<T>>,
}

impl<J, T> Drop for Leading<'_, J, T> {
    fn drop(&mut self) {
        let mut st = self.group.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut answers = std::mem::take(&mut self.answers).into_iter();
        for t in self.tickets.drain(..) {
            let a = answers
                .next()
                .unwrap_or_else(|| Err(Error::internal("a grouped write panicked")));
            st.answers.insert(t, a);
        }
        st.leading = false;
        drop(st);
        self.group.done.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A fake store: a committed log of applied jobs. A transaction works on a copy and
    /// replaces the log only when its closure succeeds, like a real one.
    #[derive(Default)]
    struct Fake {
        log: Mutex<Vec<u32>>,
        transactions: AtomicUsize,
    }

    impl Fake {
        fn commit(&self, jobs: Vec<u32>) -> Result<Vec<u32>> {
            // Slow enough that callers pile up behind the leader.
            std::thread::sleep(std::time::Duration::from_millis(2));
            let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
            let mut copy = log.clone();
            let out = jobs
                .into_iter()
                .map(|j| apply(&mut copy, j))
                .collect::<Result<Vec<u32>>>()?;
            *log = copy;
            self.transactions.fetch_add(1, Ordering::SeqCst);
            Ok(out)
        }
    }

    /// Job `j` appends itself and answers `j * 10`; 13 is refused; 99 panics.
    fn apply(log: &mut Vec<u32>, j: u32) -> Result<u32> {
        if j == 13 {
            return Err(Error::internal("job 13 is refused"));
        }
        if j == 99 {
            panic!("job 99 panics");
        }
        log.push(j);
        Ok(j * 10)
    }

    fn run(jobs: Vec<Vec<u32>>) -> (Arc<Fake>, Vec<Vec<Result<u32>>>) {
        let fake = Arc::new(Fake::default());
        let group: Arc<Group<u32, u32>> = Arc::new(Group::default());
        let handles: Vec<_> = jobs
            .into_iter()
            .map(|mine| {
                let (fake, group) = (fake.clone(), group.clone());
                std::thread::spawn(move || {
                    mine.into_iter()
                        .map(|j| {
                            let f = &*fake;
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                group.submit(j, &|jobs| f.commit(jobs))
                            }))
                            .unwrap_or_else(|_| Err(Error::internal("the caller panicked")))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let answers = handles.into_iter().map(|h| h.join().unwrap()).collect();
        (fake, answers)
    }

    #[test]
    fn every_caller_gets_its_own_answer_and_writes_are_shared() {
        let jobs: Vec<Vec<u32>> = (0..8)
            .map(|t| (0..20).map(|i| 100 + t * 20 + i).collect())
            .collect();
        let (fake, answers) = run(jobs.clone());
        for (mine, got) in jobs.iter().zip(&answers) {
            let got: Vec<u32> = got.iter().map(|a| *a.as_ref().unwrap()).collect();
            assert_eq!(got, mine.iter().map(|j| j * 10).collect::<Vec<_>>());
        }
        let log = fake.log.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert_eq!(log.len(), 160, "every job applied exactly once");
        // Each caller's jobs keep their order in the log.
        for mine in &jobs {
            let order: Vec<u32> = log.iter().copied().filter(|j| mine.contains(j)).collect();
            assert_eq!(&order, mine);
        }
        let tx = fake.transactions.load(Ordering::SeqCst);
        assert!(
            tx < 160,
            "8 concurrent callers shared transactions ({tx} for 160 jobs)"
        );
    }

    /// `threads` lists of 10 distinct jobs from `base` (`base + 10 t + i`), except where
    /// `special(t, i)` names a job of its own.
    fn job_lists(
        threads: u32,
        base: u32,
        special: impl Fn(u32, u32) -> Option<u32>,
    ) -> Vec<Vec<u32>> {
        (0..threads)
            .map(|t| {
                (0..10)
                    .map(|i| special(t, i).unwrap_or(base + t * 10 + i))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn a_refused_job_fails_alone() {
        let jobs = job_lists(6, 200, |t, i| (t == 2 && i % 3 == 0).then_some(13));
        let (fake, answers) = run(jobs.clone());
        let log = fake.log.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for (mine, got) in jobs.iter().zip(&answers) {
            for (j, a) in mine.iter().zip(got) {
                if *j == 13 {
                    let e = a.as_ref().unwrap_err();
                    assert!(e.to_string().contains("job 13 is refused"), "{e}");
                } else {
                    assert_eq!(*a.as_ref().unwrap(), j * 10);
                    assert_eq!(log.iter().filter(|x| *x == j).count(), 1);
                }
            }
        }
        assert!(!log.contains(&13));
        assert_eq!(log.len(), 60 - 4);
    }

    #[test]
    fn a_panicking_job_releases_the_queue() {
        let jobs = job_lists(4, 300, |t, i| (t == 1 && i == 4).then_some(99));
        let (fake, answers) = run(jobs.clone());
        // Nobody hangs; the panicking caller and those grouped with it get errors, and every
        // job that got Ok is stored exactly once.
        let log = fake.log.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut ok = 0;
        for (mine, got) in jobs.iter().zip(&answers) {
            for (j, a) in mine.iter().zip(got) {
                match a {
                    Ok(v) => {
                        ok += 1;
                        assert_eq!(*v, j * 10);
                        assert_eq!(log.iter().filter(|x| *x == j).count(), 1);
                    }
                    Err(_) => assert!(!log.contains(j)),
                }
            }
        }
        assert_eq!(log.len(), ok);
        assert!(answers[1][4].is_err());
        // The same group goes on: the panicking caller's later jobs commit.
        assert!(answers[1][5..].iter().all(|a| a.is_ok()));
    }
}
