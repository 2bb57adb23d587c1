//! The keyed operators of the job, run by each worker on the tenants it owns.
//!
//! - [`key`]: a tenant's `companyID` as the table keeps it (inline when short).
//! - [`window`]: per-tenant sums of `nbJobs` per day, and the 30/90-day counts.
//! - [`score`]: the churn model ([`score::Model`]), loaded from a file or built in.
//! - [`snapshot`]: tenant state to versioned bytes and back, for checkpoints.
//! - [`tenant`]: the keyed state that joins job events with the latest profile.
//!
//! A worker feeds each record, in order, to [`tenant::TenantTable`]:
//!
//! ```
//! use tenantflow_core::decode::{Decoder, DefaultKind};
//! use tenantflow_core::Record;
//! use tenantflow_operators::{score::Model, tenant::{JobOutcome, TenantTable}, window::Retention};
//!
//! let model = Model::builtin();
//! let mut table: TenantTable<()> = TenantTable::new(Retention::default());
//! let decoder = Decoder::new(DefaultKind::Infer);
//! let company = decoder.decode_json(br#"{"companyID":"c","industry":"retail","revenu":1,"employees":2,"job30":3,"job90":4,"monthlyFee":5,"totalFee":6}"#).unwrap();
//! let Record::Company(company) = company else { unreachable!() };
//! table.upsert(&company, &model, |_| ());
//! let job = decoder.decode_json(br#"{"companyID":"c","userID":"u","nbJobs":2,"creationDate":0}"#).unwrap();
//! let Record::Job(job) = job else { unreachable!() };
//! match table.process_job(&job.company_id, job.nb_jobs, 0, &model) {
//!     JobOutcome::Joined(joined) => assert_eq!((joined.job30, joined.job90), (5, 6)),
//!     _ => unreachable!(),
//! }
//! ```

pub mod contract;
pub mod key;
pub mod score;
pub mod snapshot;
pub mod tenant;
pub mod window;
