//! The IoT permission classes of the Cognito and role-alias checks.

use std::sync::OnceLock;

/// Thing write ("manage/modify things") actions, in the reference's order.
pub const THING_ADMIN_WRITE_ACTIONS: [&str; 11] = [
    "AddThingToThingGroup",
    "AttachThingPrincipal",
    "CreateThing",
    "DeleteThing",
    "DetachThingPrincipal",
    "ListThings",
    "ListThingsInThingGroup",
    "RegisterThing",
    "RemoveThingFromThingGroup",
    "UpdateThing",
    "UpdateThingGroupsForThing",
];

/// Thing admin read actions, in the reference's order.
pub const THING_ADMIN_READ_ACTIONS: [&str; 4] = [
    "DescribeThing",
    "ListJobExecutionsForThing",
    "ListThingGroupsForThing",
    "ListThingPrincipals",
];

/// The `iot:` actions of the data plane (MQTT, shadows, jobs, retained messages): none of
/// the admin classes; the data-plane rules (palisade-iot-policy) judge them.
pub const DATA_PLANE_ACTIONS: [&str; 15] = [
    "Connect",
    "Publish",
    "Subscribe",
    "Receive",
    "RetainPublish",
    "GetThingShadow",
    "UpdateThingShadow",
    "DeleteThingShadow",
    "ListNamedShadowsForThing",
    "DescribeJobExecution",
    "GetPendingJobExecutions",
    "StartNextPendingJobExecution",
    "UpdateJobExecution",
    "GetRetainedMessage",
    "ListRetainedMessages",
];

/// Every other IoT control-plane operation of the API model (alphabetical, as the model
/// lists them): the non-thing admin actions.
pub fn non_thing_admin_actions() -> &'static [&'static str] {
    static LIST: OnceLock<Vec<&'static str>> = OnceLock::new();
    LIST.get_or_init(|| {
        palisade_model::OPERATIONS
            .iter()
            .map(|op| op.name)
            .filter(|name| {
                !THING_ADMIN_WRITE_ACTIONS.contains(name)
                    && !THING_ADMIN_READ_ACTIONS.contains(name)
                    && !DATA_PLANE_ACTIONS.contains(name)
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_partition_the_model() {
        let names: Vec<&str> = palisade_model::OPERATIONS.iter().map(|o| o.name).collect();
        for name in THING_ADMIN_WRITE_ACTIONS
            .iter()
            .chain(&THING_ADMIN_READ_ACTIONS)
        {
            assert!(names.contains(name), "{name} is an operation of the model");
        }
        // 272 operations: 11 write, 4 read, DescribeJobExecution is data plane.
        assert_eq!(names.len(), 272);
        assert_eq!(non_thing_admin_actions().len(), 272 - 11 - 4 - 1);
        assert!(non_thing_admin_actions().contains(&"CreatePolicy"));
        assert!(!non_thing_admin_actions().contains(&"DescribeJobExecution"));
    }
}
